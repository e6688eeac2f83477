//! HTML for browsers: the `/form` dev pages (SPEC §7) and the small result pages answered when a
//! request's `Accept` prefers `text/html` over JSON. Every value from a request is escaped.

use serde_json::Value;

/// Whether an `Accept` header prefers `text/html` to `application/json`.
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    quality(accept, "text", "html") > quality(accept, "application", "json")
}

/// The q-value the most specific matching range gives `type/subtype`.
fn quality(accept: &str, ty: &str, sub: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let (t, s) = media.split_once('/').unwrap_or((media.as_str(), ""));
        let specificity = if t == ty && s == sub {
            3
        } else if t == ty && s == "*" {
            2
        } else if t == "*" && s == "*" {
            1
        } else {
            continue;
        };
        if best.is_none_or(|(b, _)| specificity > b) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// The `/form` actions and what each page posts. (Its schema, for `/openapi.json`, spells them
/// as `parse` reads them; there is no serde here, `rename_all` is read by `ToSchema` alone.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FormAction {
    Signup,
    Login,
    VerifyEmail,
    Invite,
    ResetPassword,
    ChangeEmail,
    ForgotPassword,
    /// Sign in with a session cookie (only with sessions on), or, signed in, who and a logout
    /// button: [`session_page`].
    Session,
}

impl FormAction {
    /// Reads the `action` query parameter; `None` for unknown actions and `change-password`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "signup" => FormAction::Signup,
            "login" => FormAction::Login,
            "verify-email" => FormAction::VerifyEmail,
            "invite" => FormAction::Invite,
            "reset-password" => FormAction::ResetPassword,
            "change-email" => FormAction::ChangeEmail,
            "forgot-password" => FormAction::ForgotPassword,
            "session" => FormAction::Session,
            _ => return None,
        })
    }
}

/// The Turnstile widget to include: the script's URL and the site key.
#[derive(Debug, Clone, Copy)]
pub struct Widget<'a> {
    pub script: &'a str,
    pub site_key: &'a str,
}

/// Renders the form for `action`, with `token` (escaped) as a hidden field where one is needed,
/// and the captcha widget on the forms whose endpoint needs one.
/// The sign-in buttons of the enabled OAuth providers (SPEC §9) on the login and session pages,
/// and what the last provider sign-in handed back to the page.
#[derive(Debug, Clone, Default)]
pub struct OAuthPanel<'a> {
    /// `(name, label)` of each enabled provider, in the configured order.
    pub providers: Vec<(&'static str, &'static str)>,
    /// Where the provider's sign-in comes back to (an `EXTERNAL_URL/form` page, so allowed).
    pub redirect_url: String,
    /// `mode=session` (the session page's buttons).
    pub session: bool,
    /// The one-time code a sign-in handed back: the login page offers to trade it for tokens.
    pub code: Option<&'a str>,
    /// The error code a failed sign-in handed back.
    pub error: Option<&'a str>,
}

impl OAuthPanel<'_> {
    fn html(&self) -> String {
        let mut html = String::new();
        if let Some(error) = self.error {
            let why = match error {
                "access_denied" => "access was not granted at the provider",
                "email_not_verified" => "the provider has not verified your email address",
                "signup_disabled" => "new accounts cannot sign up here",
                "invalid_state" => "the sign-in expired or was started in another browser",
                _ => "the provider's answer could not be used",
            };
            html.push_str(&format!(
                "<p class=\"error\" role=\"alert\">Signing in with the provider failed: {why} (<code>{}</code>).</p>\n",
                escape(error)
            ));
        }
        if let Some(code) = self.code {
            html.push_str(&format!(
                r#"<form method="post" action="/oauth/token">
<input type="hidden" name="code" value="{}">
<button type="submit">Finish signing in</button>
</form>
"#,
                escape(code)
            ));
        }
        if self.providers.is_empty() {
            return html;
        }
        // Links, not forms: the CSP's `form-action 'self'` also covers where a form's answer
        // redirects to, and the start of a sign-in redirects to the provider.
        html.push_str("<div class=\"providers\">\n");
        for (name, label) in &self.providers {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("redirect_url", &self.redirect_url);
            if self.session {
                query.append_pair("mode", "session");
            }
            html.push_str(&format!(
                "<p><a class=\"button\" href=\"/oauth/{name}?{}\">Sign in with {label}</a></p>\n",
                escape(&query.finish())
            ));
        }
        html.push_str("</div>\n");
        html
    }
}

/// The page of `/form?action=…`. Every value from a request is escaped; `oauth` adds the
/// provider buttons to the login page.
pub fn form_page(
    action: FormAction,
    token: &str,
    widget: Option<Widget<'_>>,
    oauth: Option<&OAuthPanel<'_>>,
) -> String {
    let token_field = format!(
        r#"<input type="hidden" name="token" value="{}">"#,
        escape(token)
    );
    let password = |label: &str| {
        format!(
            r#"<label>{label} <input type="password" name="password" autocomplete="new-password"></label>"#
        )
    };
    let (title, target, fields, button) = match action {
        FormAction::Signup => (
            "Sign up",
            "/signup",
            r#"<label>Email <input type="email" name="email" required autocomplete="email"></label>"#.to_owned(),
            "Sign up",
        ),
        FormAction::Login => (
            "Sign in",
            "/token",
            r#"<label>Email <input type="email" name="email" required autocomplete="email"></label>
<label>Password <input type="password" name="password" required autocomplete="current-password"></label>"#
                .to_owned(),
            "Sign in",
        ),
        FormAction::VerifyEmail => ("Verify your email", "/verify-email", format!("{token_field}\n{}", password("Choose a password")), "Verify email"),
        FormAction::Invite => ("Accept the invitation", "/verify-email", format!("{token_field}\n{}", password("Choose a password")), "Accept invitation"),
        FormAction::ResetPassword => ("Reset your password", "/verify-email", format!("{token_field}\n{}", password("New password")), "Reset password"),
        FormAction::ChangeEmail => ("Confirm your new email", "/verify-email", token_field, "Confirm email"),
        FormAction::ForgotPassword => (
            "Forgot your password?",
            "/reset-password",
            r#"<label>Email <input type="email" name="email" required autocomplete="email"></label>"#.to_owned(),
            "Send reset link",
        ),
        FormAction::Session => {
            return session_page(&SessionPage::SignIn { rd: None }, widget, oauth);
        }
    };
    let needs_captcha = matches!(
        action,
        FormAction::Signup | FormAction::Login | FormAction::ForgotPassword
    );
    let (script, widget) = match widget.filter(|_| needs_captcha) {
        Some(w) => (
            format!(
                "<script src=\"{}\" async defer></script>\n",
                escape(w.script)
            ),
            format!(
                "<div class=\"cf-turnstile\" data-sitekey=\"{}\"></div>\n",
                escape(w.site_key)
            ),
        ),
        None => (String::new(), String::new()),
    };
    let panel = match oauth.filter(|_| action == FormAction::Login) {
        Some(p) => p.html(),
        None => String::new(),
    };
    page(
        title,
        &format!(
            r#"{script}<form method="post" action="{target}">
{fields}
{widget}<button type="submit">{button}</button>
</form>
{panel}"#
        ),
    )
}

/// What `/form?action=session` shows.
#[derive(Debug, Clone, Copy)]
pub enum SessionPage<'a> {
    /// Not signed in: the sign-in form (posting to `POST /session`), carrying `rd`, already
    /// validated, through.
    SignIn { rd: Option<&'a str> },
    /// Signed in (the cookie names a live session): who, a link on to `rd` when given, and a
    /// logout button (posting to `POST /logout`).
    SignedIn { email: &'a str, rd: Option<&'a str> },
}

/// The referrer policy of the session pages: their forms' posts must carry the page's
/// `Origin` (the CSRF rule of `POST /logout`), which `no-referrer` would turn into `null`;
/// other origins learn nothing.
pub const SESSION_REFERRER_POLICY: &str = "same-origin";

/// The page of `/form?action=session`. Every value from a request is escaped.
pub fn session_page(
    which: &SessionPage<'_>,
    widget: Option<Widget<'_>>,
    oauth: Option<&OAuthPanel<'_>>,
) -> String {
    let content = match which {
        SessionPage::SignIn { rd } => {
            let rd_field = rd.map_or(String::new(), |rd| {
                format!(
                    "<input type=\"hidden\" name=\"rd\" value=\"{}\">\n",
                    escape(rd)
                )
            });
            let (script, widget) = match widget {
                Some(w) => (
                    format!(
                        "<script src=\"{}\" async defer></script>\n",
                        escape(w.script)
                    ),
                    format!(
                        "<div class=\"cf-turnstile\" data-sitekey=\"{}\"></div>\n",
                        escape(w.site_key)
                    ),
                ),
                None => (String::new(), String::new()),
            };
            format!(
                r#"{script}<form method="post" action="/session">
{rd_field}<label>Email <input type="email" name="email" required autocomplete="email"></label>
<label>Password <input type="password" name="password" required autocomplete="current-password"></label>
{widget}<button type="submit">Sign in</button>
</form>
{}"#,
                oauth.map(OAuthPanel::html).unwrap_or_default()
            )
        }
        SessionPage::SignedIn { email, rd } => {
            let onward = rd.map_or(String::new(), |rd| {
                format!("<p><a href=\"{}\">Continue</a></p>\n", escape(rd))
            });
            format!(
                r#"<p class="ok">You are signed in as {}.</p>
{onward}<form method="post" action="/logout">
<button type="submit">Sign out</button>
</form>"#,
                escape(email)
            )
        }
    };
    let title = match which {
        SessionPage::SignIn { .. } => "Sign in",
        SessionPage::SignedIn { .. } => "Signed in",
    };
    page_with(title, &content, SESSION_REFERRER_POLICY)
}

/// The HTML page for a JSON answer of `path` with `status`.
pub fn result_page(path: &str, status: u16, body: &Value) -> String {
    if status >= 400 {
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("The request failed.");
        let mut html = format!("<p class=\"error\">{}</p>", escape(message));
        if let Some(rules) = body.get("rules").and_then(Value::as_array) {
            html.push_str("<ul>");
            for rule in rules.iter().filter_map(Value::as_str) {
                html.push_str(&format!("<li>{}</li>", escape(rule_text(rule))));
            }
            html.push_str("</ul>");
        }
        if let Some(id) = body.get("correlation_id").and_then(Value::as_str) {
            html.push_str(&format!("<p>Reference: <code>{}</code></p>", escape(id)));
        }
        return page("Something went wrong", &html);
    }
    let email = body
        .pointer("/user/email")
        .and_then(Value::as_str)
        .map(escape);
    let text = match path {
        "/signup" => {
            "Check your inbox: if this address can sign up, a link is on its way.".to_owned()
        }
        "/reset-password" => {
            "If an account exists for this address, a link to reset its password is on its way."
                .to_owned()
        }
        "/verify-email" => match email {
            Some(e) => format!("All set: you are signed in as {e}."),
            None => "All set.".to_owned(),
        },
        "/token" | "/oauth/token" => "You are signed in.".to_owned(),
        _ => "Done.".to_owned(),
    };
    page("Done", &format!("<p class=\"ok\">{text}</p>"))
}

fn rule_text(rule: &str) -> &str {
    match rule {
        "min_length" => "The password is too short.",
        "max_length" => "The password is too long.",
        "uppercase" => "It needs an upper-case letter.",
        "lowercase" => "It needs a lower-case letter.",
        "digit" => "It needs a digit.",
        "special" => "It needs a character that is not a letter or a digit.",
        other => other,
    }
}

/// The pages' one style sheet, inline, allowed by its hash in [`content_security_policy`].
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;\
padding:0 1rem}label,input,button{display:block;width:100%;margin:.4rem 0}input,button{padding:\
.5rem;box-sizing:border-box}.error{color:#a00}a.button{display:block;padding:.5rem;\
border:1px solid #888;border-radius:2px;text-align:center;color:inherit;text-decoration:none}";

/// The `Content-Security-Policy` of every HTML page: nothing but the pages' own style sheet
/// (by hash), forms posting to this origin, no framing; with a captcha, the widget's origin for
/// its script, its frame and its calls. No inline script is allowed at all: the pages have none.
pub fn content_security_policy(captcha_script: Option<&url::Url>) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let style = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    let mut csp = format!(
        "default-src 'none'; style-src 'sha256-{style}'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    if let Some(script) = captcha_script {
        let origin = script.origin().ascii_serialization();
        csp.push_str(&format!(
            "; script-src {origin}; frame-src {origin}; connect-src {origin}"
        ));
    }
    csp
}

fn page(title: &str, content: &str) -> String {
    page_with(title, content, "no-referrer")
}

/// A page whose document sends referrers by `referrer` (a `Referrer-Policy` token).
fn page_with(title: &str, content: &str, referrer: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="{referrer}">
<title>{title} · Authura</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
{content}
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(prefers_html(Some(browser)));
        assert!(!prefers_html(Some("*/*")));
        assert!(!prefers_html(Some("application/json")));
        assert!(!prefers_html(Some("application/json, text/html;q=0.5")));
        assert!(prefers_html(Some("text/html")));
        assert!(prefers_html(Some("text/*, application/json;q=0.1")));
        assert!(!prefers_html(None));
    }

    #[test]
    fn session_pages_escape_and_carry_rd() {
        let evil = r#"https://app.example.com/"><script>alert(1)</script>"#;
        let sign_in = session_page(&SessionPage::SignIn { rd: Some(evil) }, None, None);
        assert!(!sign_in.contains("<script>alert"));
        assert!(sign_in.contains(r#"action="/session""#));
        assert!(sign_in.contains(r#"name="rd" value="https://app.example.com/&quot;&gt;"#));
        assert!(sign_in.contains(r#"<meta name="referrer" content="same-origin">"#));
        let signed_in = session_page(
            &SessionPage::SignedIn {
                email: "<b>@example.com",
                rd: None,
            },
            None,
            None,
        );
        assert!(signed_in.contains("signed in as &lt;b&gt;@example.com."));
        assert!(signed_in.contains(r#"action="/logout""#));
        assert!(!signed_in.contains("Continue"));
    }

    #[test]
    fn form_values_are_escaped() {
        let html = form_page(
            FormAction::VerifyEmail,
            r#""><script>alert(1)</script>"#,
            None,
            None,
        );
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(html.contains(r#"action="/verify-email""#));
        assert_eq!(FormAction::parse("change-password"), None);
    }

    #[test]
    fn provider_buttons_escape_what_came_back() {
        let panel = OAuthPanel {
            providers: vec![("google", "Google"), ("github", "GitHub")],
            redirect_url: "http://localhost:9000/form?action=login&x=\"><b>".into(),
            session: false,
            code: Some(r#""><script>alert(1)</script>"#),
            error: Some("<i>provider_error</i>"),
        };
        let html = form_page(FormAction::Login, "", None, Some(&panel));
        assert!(!html.contains("<script>alert") && !html.contains("<i>") && !html.contains("<b>"));
        assert!(html.contains(r#"href="/oauth/google?redirect_url=http%3A%2F%2Flocalhost%3A9000%2Fform%3Faction%3Dlogin%26x%3D%22%3E%3Cb%3E""#));
        assert!(html.contains("Sign in with GitHub"));
        assert!(html.contains(r#"action="/oauth/token""#));
        assert!(html.contains("&lt;i&gt;provider_error"));
        assert!(!html.contains("mode=session"));
        // Only the login page shows them.
        assert!(!form_page(FormAction::Signup, "", None, Some(&panel)).contains("/oauth/"));
        let session = OAuthPanel {
            session: true,
            code: None,
            error: None,
            ..panel
        };
        let html = session_page(&SessionPage::SignIn { rd: None }, None, Some(&session));
        assert!(html.contains("&amp;mode=session\">Sign in with Google</a>"));
        assert!(!html.contains("/oauth/token"));
    }
}
