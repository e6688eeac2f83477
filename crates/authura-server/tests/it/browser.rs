//! The `/form` pages in a real browser (SPEC §7): Debian's Chromium, driven by playwright-core
//! through `tests/browser/driver.mjs` one command at a time, so the assertions and the mail
//! fetched from the SMTP sink between steps stay here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::check::ProxyKind;
use crate::harness::{PW, ROOT, ROOT_PW, TestServer, s};

const CHROMIUM: &str = "/usr/bin/chromium";
const EMAIL: &str = "bea@example.com";
const NEW_PW: &str = "N3w!passw0rd";

#[tokio::test]
async fn signup_verify_login_and_reset_through_the_form_pages() {
    let srv = TestServer::start().await;
    let mut browser = Browser::launch().await;

    // Sign up: the browser posts the form and shows the HTML result, not JSON.
    let form = browser.goto(&srv.url("/form?action=signup")).await;
    check_form(&form, "Sign up", "/signup", &["email"]);
    browser.fill("Email", EMAIL).await;
    let done = browser.submit("Sign up").await;
    check(
        &done,
        200,
        "Check your inbox: if this address can sign up, a link is on its way.",
    );

    // The mail's link opens the verify form, carrying the token in a hidden field.
    let mail = srv.mail_to(EMAIL).await;
    let link = mail.link().unwrap();
    let verify = browser.goto(&link).await;
    check_form(
        &verify,
        "Verify your email",
        "/verify-email",
        &["token", "password"],
    );
    assert_eq!(
        verify.hidden("token"),
        TestServer::token_in(&mail),
        "{verify:#?}"
    );
    assert_eq!(verify.label_of("password"), "Choose a password");
    browser
        .screenshot(&target_dir().join("verify-form.png"))
        .await;

    // A password breaking the policy: the error page lists exactly the unmet rules.
    browser.fill("Choose a password", "weakpass").await;
    let weak = browser.submit("Verify email").await;
    check(&weak, 400, "the password does not meet the policy");
    assert_eq!(
        weak.items,
        [
            "It needs an upper-case letter.",
            "It needs a digit.",
            "It needs a character that is not a letter or a digit.",
        ],
        "{weak:#?}"
    );

    // Back to the form (the token is still unused), a good password: signed in.
    let again = browser.back().await;
    assert_eq!(again.url, link);
    check_form(
        &again,
        "Verify your email",
        "/verify-email",
        &["token", "password"],
    );
    browser.fill("Choose a password", PW).await;
    let verified = browser.submit("Verify email").await;
    check(
        &verified,
        200,
        &format!("All set: you are signed in as {EMAIL}."),
    );

    // The link is single-use.
    browser.goto(&link).await;
    browser.fill("Choose a password", PW).await;
    let reused = browser.submit("Verify email").await;
    check(&reused, 400, "this link has already been used");

    login(&mut browser, &srv, PW, 200, "You are signed in.").await;
    login(
        &mut browser,
        &srv,
        "Wr0ng!password",
        401,
        "wrong email or password",
    )
    .await;

    // Forgot password: mail, link, reset form, new password.
    let forgot = browser.goto(&srv.url("/form?action=forgot-password")).await;
    check_form(
        &forgot,
        "Forgot your password?",
        "/reset-password",
        &["email"],
    );
    browser.fill("Email", EMAIL).await;
    let sent = browser.submit("Send reset link").await;
    check(
        &sent,
        200,
        "If an account exists for this address, a link to reset its password is on its way.",
    );
    let mail = srv.mail_to(EMAIL).await;
    let link = mail.link().unwrap();
    assert!(link.contains("action=reset-password"), "{link}");
    let reset = browser.goto(&link).await;
    check_form(
        &reset,
        "Reset your password",
        "/verify-email",
        &["token", "password"],
    );
    assert_eq!(reset.hidden("token"), TestServer::token_in(&mail));
    browser.fill("New password", NEW_PW).await;
    let reset_done = browser.submit("Reset password").await;
    check(
        &reset_done,
        200,
        &format!("All set: you are signed in as {EMAIL}."),
    );

    login(&mut browser, &srv, NEW_PW, 200, "You are signed in.").await;
    login(&mut browser, &srv, PW, 401, "wrong email or password").await;
    browser.close().await;
}

#[tokio::test]
async fn markup_in_the_form_query_is_shown_as_text_never_run() {
    let srv = TestServer::start().await;
    let mut browser = Browser::launch().await;
    let token = r#""><script>window.__xss=1;alert(1)</script><img src=x onerror="window.__xss=2">"#;
    let url = url::Url::parse_with_params(
        &srv.url("/form"),
        [("action", "verify-email"), ("token", token)],
    )
    .unwrap();
    let page = browser.goto(url.as_str()).await;
    check_form(
        &page,
        "Verify your email",
        "/verify-email",
        &["token", "password"],
    );
    assert_eq!(page.hidden("token"), token, "{page:#?}");
    assert!(page.dialogs.is_empty(), "{page:#?}");
    assert_eq!(browser.eval("window.__xss").await, Value::Null);
    assert_eq!(browser.eval("document.scripts.length").await, 0);

    // An unknown action is an error page, which does not run markup from the query either.
    let action = "<script>window.__xss=3;alert(3)</script>";
    let url = url::Url::parse_with_params(&srv.url("/form"), [("action", action)]).unwrap();
    let page = browser.goto(url.as_str()).await;
    check(&page, 400, "unknown form action");
    assert_eq!(browser.eval("window.__xss").await, Value::Null);
    browser.close().await;
}

/// A local stand-in of Turnstile's script: like the real widget, it puts the response token in a
/// hidden `cf-turnstile-response` field inside the widget's element, within the form.
const TURNSTILE_STAND_IN: &str = r#"
for (const el of document.querySelectorAll(".cf-turnstile")) {
  const input = document.createElement("input");
  input.type = "hidden";
  input.name = "cf-turnstile-response";
  input.value = "stand-in-token:" + el.dataset.sitekey;
  el.appendChild(input);
}
"#;

#[tokio::test]
async fn the_captcha_widget_is_solved_and_checked_through_the_form() {
    use authura_testkit::scripted::{Answer, Scripted};
    let siteverify = Scripted::start("/siteverify", Answer::new(200, r#"{"success": true}"#))
        .await
        .unwrap();
    let script = Scripted::start("/turnstile.js", Answer::javascript(TURNSTILE_STAND_IN))
        .await
        .unwrap();
    let srv = TestServer::with(&[
        ("CAPTCHA", "turnstile"),
        ("TURNSTILE_SECRET_KEY", "turnstile-secret"),
        ("TURNSTILE_SITE_KEY", "site-key-123"),
        ("TURNSTILE_SCRIPT", script.url.as_str()),
        ("TURNSTILE_VERIFY_URL", siteverify.url.as_str()),
    ])
    .await;
    let mut browser = Browser::launch().await;
    // The widget ran: the form carries its response token.
    let form = browser.goto(&srv.url("/form?action=signup")).await;
    check_form(
        &form,
        "Sign up",
        "/signup",
        &["email", "cf-turnstile-response"],
    );
    assert_eq!(
        form.hidden("cf-turnstile-response"),
        "stand-in-token:site-key-123"
    );
    browser.fill("Email", EMAIL).await;
    let page = browser.submit("Sign up").await;
    check(&page, 200, "Check your inbox");
    let seen = siteverify.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .body
            .contains("response=stand-in-token%3Asite-key-123"),
        "{}",
        seen[0].body
    );
    srv.mail_to(EMAIL).await;

    // A widget that did not run (no token) is refused with the captcha error, and nothing is sent.
    script.answer(Answer::javascript(""));
    let form = browser.goto(&srv.url("/form?action=forgot-password")).await;
    check_form(
        &form,
        "Forgot your password?",
        "/reset-password",
        &["email"],
    );
    browser.fill("Email", EMAIL).await;
    let page = browser.submit("Send reset link").await;
    check(&page, 400, "the captcha is missing");
    assert_eq!(siteverify.seen().len(), 1);
    browser.close().await;
}

#[tokio::test]
async fn a_session_signs_in_through_the_form_and_back_to_rd_then_logs_out() {
    // Plain http on loopback: the cookie cannot be `Secure` here (as with `serve --dev`).
    let srv = TestServer::with(&[
        ("SESSIONS_ENABLED", "true"),
        ("SESSION_COOKIE_SECURE", "false"),
    ])
    .await;
    let mut browser = Browser::launch().await;
    // Where a reverse proxy would send the browser back to: under VERIFY_REDIRECT_URL here.
    let rd = srv.url("/form?action=signup");
    let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    let form = browser
        .goto(&srv.url(&format!("/form?action=session&rd={encoded}")))
        .await;
    check_form(&form, "Sign in", "/session", &["rd", "email", "password"]);
    assert_eq!(form.hidden("rd"), rd);

    // A wrong password: the error page, no cookie.
    browser.fill("Email", ROOT).await;
    browser.fill("Password", "Wr0ng!password").await;
    let wrong = browser.submit("Sign in").await;
    check(&wrong, 401, "wrong email or password");
    assert!(browser.cookies().await.is_empty());

    // The right one: back to `rd`, with the session cookie, which page scripts cannot read.
    browser.back().await;
    browser.fill("Email", ROOT).await;
    browser.fill("Password", ROOT_PW).await;
    let back = browser.submit("Sign in").await;
    assert_eq!(back.url, rd, "{back:#?}");
    assert_eq!(back.heading, "Sign up");
    let cookies = browser.cookies().await;
    assert_eq!(cookies.len(), 1, "{cookies:#?}");
    let cookie = &cookies[0];
    assert_eq!(cookie["name"], "authura_session");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Lax");
    assert_eq!(cookie["path"], "/");
    assert_eq!(cookie["secure"], false);
    assert_eq!(s(&cookie["value"]).len(), 43);
    assert_eq!(browser.eval("document.cookie").await, "");

    // The session page knows who is signed in, and offers the logout.
    let signed_in = browser.goto(&srv.url("/form?action=session")).await;
    assert_eq!(signed_in.heading, "Signed in", "{signed_in:#?}");
    assert!(
        signed_in
            .text
            .contains(&format!("You are signed in as {ROOT}.")),
        "{signed_in:#?}"
    );
    check_form(&signed_in, "Signed in", "/logout", &[]);
    browser
        .screenshot(&target_dir().join("session-signed-in.png"))
        .await;
    // The logout form posts with the page's Origin (the CSRF rule) and comes back here.
    let out = browser.submit("Sign out").await;
    assert_eq!(out.url, srv.url("/form?action=session"), "{out:#?}");
    check_form(&out, "Sign in", "/session", &["email", "password"]);
    assert!(browser.cookies().await.is_empty());
    let key = s(&cookie["value"]).to_owned();
    let after = srv
        .send(
            srv.client
                .get(srv.url("/session"))
                .header("cookie", format!("authura_session={key}")),
        )
        .await;
    after.expect(401, "invalid_session");
    browser.close().await;
}

#[tokio::test]
async fn provider_buttons_sign_in_through_a_real_openid_provider() {
    let provider = crate::oauth::start_provider();
    let client = "client-browser";
    crate::oauth::set_profile(
        &provider,
        client,
        json!({"sub": "b-1", "claims": {"email": "Ola@Example.org", "email_verified": true}}),
    )
    .await;
    let srv = TestServer::with(&[
        ("OAUTH_PROVIDERS", "oidc"),
        ("OIDC_ISSUER_URL", provider.url.as_str()),
        ("OIDC_CLIENT_ID", client),
        ("OIDC_CLIENT_SECRET", "provider-secret"),
        ("SESSIONS_ENABLED", "true"),
        ("SESSION_COOKIE_SECURE", "false"),
    ])
    .await;
    let mut browser = Browser::launch().await;

    // The login page: the password form, and a button per provider.
    let form = browser.goto(&srv.url("/form?action=login")).await;
    check_form(&form, "Sign in", "/token", &["email", "password"]);
    assert!(
        form.text.contains("Sign in with single sign-on"),
        "{form:#?}"
    );
    // Through the provider and back to the login page with a one-time code, never tokens.
    let back = browser.follow("Sign in with single sign-on").await;
    assert!(
        back.url.starts_with(&srv.url("/form?action=login&code=")),
        "{back:#?}"
    );
    assert!(!back.url.contains("token="), "{back:#?}");
    assert!(
        back.dialogs.is_empty() && back.errors.is_empty(),
        "{back:#?}"
    );
    let done = browser.submit("Finish signing in").await;
    check(&done, 200, "You are signed in.");
    // The page's code was single-use: going back and submitting again fails.
    browser.back().await;
    let again = browser.submit("Finish signing in").await;
    check(&again, 400, "");
    let email = authura_core::Email::parse("ola@example.org").unwrap();
    let user = srv
        .state
        .ctx()
        .store
        .find_by_email(None, &email)
        .await
        .unwrap()
        .expect("the provider's sign-in created the user");
    assert!(user.verified_at.is_some());

    // The session page: the provider's button signs in with `mode=session` (the cookie).
    assert!(browser.cookies().await.is_empty());
    let form = browser.goto(&srv.url("/form?action=session")).await;
    check_form(&form, "Sign in", "/session", &["email", "password"]);
    let signed_in = browser.follow("Sign in with single sign-on").await;
    assert_eq!(signed_in.heading, "Signed in", "{signed_in:#?}");
    assert!(
        signed_in
            .text
            .contains("You are signed in as ola@example.org."),
        "{signed_in:#?}"
    );
    let cookies = browser.cookies().await;
    assert!(
        cookies.iter().any(|c| c["name"] == "authura_session"),
        "{cookies:#?}"
    );
    browser.submit("Sign out").await;

    // Consent denied at the provider: the login page says so.
    crate::oauth::set_profile(&provider, client, json!({"sub": "b-1", "deny": true})).await;
    browser.goto(&srv.url("/form?action=login")).await;
    let denied = browser.follow("Sign in with single sign-on").await;
    assert!(denied.url.contains("error=access_denied"), "{denied:#?}");
    assert!(
        denied
            .text
            .contains("access was not granted at the provider"),
        "{denied:#?}"
    );
    browser
        .screenshot(&target_dir().join("oauth-denied.png"))
        .await;
    browser.close().await;
}

#[tokio::test]
async fn an_app_behind_nginx_signs_in_through_the_form_and_logs_out() {
    signs_in_through_a_proxy(ProxyKind::Nginx).await;
}

#[tokio::test]
async fn an_app_behind_caddy_signs_in_through_the_form_and_logs_out() {
    signs_in_through_a_proxy(ProxyKind::Caddy).await;
}

#[tokio::test]
async fn an_app_behind_traefik_signs_in_through_the_form_and_logs_out() {
    signs_in_through_a_proxy(ProxyKind::Traefik).await;
}

/// Issue 14 end to end: an app behind a real reverse proxy, Authura's sign-in pages served under
/// the app's own origin (docs/forward-auth.md), so the session cookie is first-party and
/// `EXTERNAL_URL` is that origin. The anonymous browser is sent to the form with `rd` = where it
/// was going, signs in, lands back there with the upstream seeing who it is, signs out on the
/// form page, and is sent to the form again.
async fn signs_in_through_a_proxy(kind: ProxyKind) {
    use crate::check::{server, start_upstream};
    let proxy_port = crate::check::free_port();
    let origin = format!("http://127.0.0.1:{proxy_port}");
    let srv = server(&[
        ("EXTERNAL_URL", &origin),
        ("ALLOWED_REDIRECT_URLS", &format!("{origin}/")),
        ("SESSION_COOKIE_SECURE", "false"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let authura = url::Url::parse(&srv.base).unwrap().port().unwrap();
    let (upstream, upstream_handle) = start_upstream();
    let proxy = kind.start(proxy_port, authura, upstream, true).await;
    let mut browser = Browser::launch().await;
    let page = format!("{origin}/reports/2026?view=full&q=a%20b");
    let encoded: String = url::form_urlencoded::byte_serialize(page.as_bytes()).collect();
    let sign_in = format!("{origin}/form?action=session&rd={encoded}");

    // Anonymous: the proxy sends the browser to the form, under the app's origin, with `rd`.
    let form = browser.goto(&page).await;
    assert_eq!(form.url, sign_in, "{form:#?}\n{}", proxy.log());
    check_form(&form, "Sign in", "/session", &["rd", "email", "password"]);
    assert_eq!(form.hidden("rd"), page);
    assert!(browser.cookies().await.is_empty());

    // Signing in lands on the original URL, which the upstream now serves with the identity.
    browser.fill("Email", ROOT).await;
    browser.fill("Password", ROOT_PW).await;
    let back = browser.submit("Sign in").await;
    assert_eq!(back.url, page, "{back:#?}\n{}", proxy.log());
    assert_eq!(back.status, Some(200), "{back:#?}");
    let seen = browser
        .eval("JSON.parse(document.querySelector('pre').textContent)")
        .await;
    assert_eq!(seen["upstream"], true, "{seen}");
    assert_eq!(seen["uri"], "/reports/2026?view=full&q=a%20b", "{seen}");
    let cookies = browser.cookies().await;
    assert_eq!(cookies.len(), 1, "{cookies:#?}");
    assert_eq!(cookies[0]["name"], "authura_session");
    let key = s(&cookies[0]["value"]).to_owned();
    let current = srv
        .send(
            srv.client
                .get(srv.url("/session"))
                .header("cookie", format!("authura_session={key}")),
        )
        .await;
    let session = &current.ok()["session"];
    let user = &current.body["user"];
    let headers = &seen["headers"];
    assert_eq!(headers["x-authura-email"], ROOT, "{seen}");
    // (The id as the header writes it, whatever JSON type the backend's ids have.)
    let id = match &user["id"] {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    };
    assert_eq!(headers["x-authura-user-id"], id.as_str(), "{seen}");
    assert_eq!(headers["x-authura-role"], user["role"], "{seen}");
    // No groups: Caddy and Traefik copy the empty header; nginx does not send a header set to
    // "" at all (either way, nothing a client sent under that name gets through).
    let groups = match kind {
        ProxyKind::Nginx => Value::Null,
        ProxyKind::Caddy | ProxyKind::Traefik => json!(""),
    };
    assert_eq!(headers["x-authura-groups"], groups, "{seen}");
    assert_eq!(headers["x-authura-session-id"], session["id"], "{seen}");
    // Another page of the app: the same session lets it through.
    browser.goto(&format!("{origin}/other")).await;
    let other = browser
        .eval("JSON.parse(document.querySelector('pre').textContent)")
        .await;
    assert_eq!(other["uri"], "/other", "{other}");
    assert_eq!(other["headers"]["x-authura-email"], ROOT, "{other}");

    // The form page, through the proxy, knows who is signed in; signing out closes the app.
    let signed_in = browser.goto(&format!("{origin}/form?action=session")).await;
    check_form(&signed_in, "Signed in", "/logout", &[]);
    assert!(
        signed_in
            .text
            .contains(&format!("You are signed in as {ROOT}.")),
        "{signed_in:#?}"
    );
    let out = browser.submit("Sign out").await;
    assert_eq!(out.url, format!("{origin}/form?action=session"), "{out:#?}");
    check_form(&out, "Sign in", "/session", &["email", "password"]);
    assert!(browser.cookies().await.is_empty());
    let again = browser.goto(&page).await;
    assert_eq!(again.url, sign_in, "{again:#?}");
    check_form(&again, "Sign in", "/session", &["rd", "email", "password"]);
    // The ended session's key is refused by the proxy too, not only by the browser's forgetting.
    let res = srv
        .send(
            srv.client
                .get(&page)
                .header("accept", "application/json")
                .header("cookie", format!("authura_session={key}")),
        )
        .await;
    res.expect(401, "invalid_session");
    browser.close().await;
    upstream_handle.stop(false).await;
}

/// Signs in through `/form?action=login` and checks the result page.
async fn login(browser: &mut Browser, srv: &TestServer, password: &str, status: u16, says: &str) {
    let form = browser.goto(&srv.url("/form?action=login")).await;
    check_form(&form, "Sign in", "/token", &["email", "password"]);
    browser.fill("Email", EMAIL).await;
    browser.fill("Password", password).await;
    let page = browser.submit("Sign in").await;
    check(&page, status, says);
}

/// A result page: its status, that it renders `says`, and that nothing ran that should not.
#[track_caller]
fn check(page: &Page, status: u16, says: &str) {
    assert_eq!(page.status, Some(status), "{page:#?}");
    let heading = if status < 400 {
        "Done"
    } else {
        "Something went wrong"
    };
    assert_eq!(page.heading, heading, "{page:#?}");
    assert!(page.text.contains(says), "expected {says:?} in {page:#?}");
    assert!(
        page.dialogs.is_empty() && page.errors.is_empty(),
        "{page:#?}"
    );
}

/// A form page: heading, where it posts, its named fields in order, and one submit button.
#[track_caller]
fn check_form(page: &Page, heading: &str, action: &str, fields: &[&str]) {
    assert_eq!(page.status, Some(200), "{page:#?}");
    assert_eq!(page.heading, heading, "{page:#?}");
    let form = page
        .form
        .as_ref()
        .unwrap_or_else(|| panic!("no form: {page:#?}"));
    assert_eq!(
        (form.action.as_str(), form.method.as_str()),
        (action, "post")
    );
    let names: Vec<&str> = form
        .fields
        .iter()
        .filter(|f| f.tag == "input")
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, fields, "{page:#?}");
    let buttons = form.fields.iter().filter(|f| f.tag == "button").count();
    assert_eq!(buttons, 1, "{page:#?}");
    assert!(
        page.dialogs.is_empty() && page.errors.is_empty(),
        "{page:#?}"
    );
}

/// What the driver reports about the page the browser shows.
#[derive(Debug, Deserialize)]
struct Page {
    url: String,
    status: Option<u16>,
    heading: String,
    text: String,
    items: Vec<String>,
    form: Option<Form>,
    dialogs: Vec<String>,
    errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Form {
    action: String,
    method: String,
    fields: Vec<Field>,
}

#[derive(Debug, Deserialize)]
struct Field {
    tag: String,
    name: String,
    value: Option<String>,
    label: String,
}

impl Page {
    fn field(&self, name: &str) -> &Field {
        self.form
            .iter()
            .flat_map(|f| &f.fields)
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name}: {self:#?}"))
    }

    /// The value of a hidden field, as the browser parsed it.
    fn hidden(&self, name: &str) -> &str {
        self.field(name).value.as_deref().unwrap_or("")
    }

    fn label_of(&self, name: &str) -> &str {
        &self.field(name).label
    }
}

/// One Chromium, driven by `driver.mjs` over its stdin and stdout.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    /// Starts the driver; fails, never skips, when Chromium or the driver's packages are missing.
    async fn launch() -> Self {
        let dir = driver_dir();
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser test needs Debian's chromium; run `cargo xtask test`, which installs it"
        );
        assert!(
            dir.join("node_modules/playwright-core").exists(),
            "{}/node_modules/playwright-core is missing: run `cargo xtask test`, which runs `npm ci` there",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join("driver.mjs"))
            .arg(CHROMIUM)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start node (run `cargo xtask test`, which installs it): {e}")
            });
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command and reads its answer; a driver error fails the test.
    async fn send(&mut self, cmd: Value) -> Value {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        // The driver's own steps time out after 15 s; this only catches a driver that hangs.
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser driver did not answer {cmd}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the browser driver exited before answering {cmd}"));
        let answer: Value = serde_json::from_str(&line).unwrap();
        if let Some(error) = answer.get("error") {
            panic!("browser step {cmd} failed: {error}");
        }
        answer
    }

    async fn page(&mut self, cmd: Value) -> Page {
        serde_json::from_value(self.send(cmd).await).unwrap()
    }

    async fn goto(&mut self, url: &str) -> Page {
        self.page(json!({"op": "goto", "url": url})).await
    }

    /// Types `value` into the input labelled `label`.
    async fn fill(&mut self, label: &str, value: &str) {
        self.send(json!({"op": "fill", "label": label, "value": value}))
            .await;
    }

    /// Clicks the button named `button` and returns the page the form's post leads to.
    async fn submit(&mut self, button: &str) -> Page {
        self.page(json!({"op": "submit", "button": button})).await
    }

    async fn follow(&mut self, link: &str) -> Page {
        self.page(json!({"op": "follow", "link": link})).await
    }

    async fn back(&mut self) -> Page {
        self.page(json!({"op": "back"})).await
    }

    async fn eval(&mut self, js: &str) -> Value {
        self.send(json!({"op": "eval", "js": js})).await["value"].take()
    }

    /// The browser's cookies, as Playwright reports them.
    async fn cookies(&mut self) -> Vec<Value> {
        self.send(json!({"op": "cookies"})).await["cookies"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn screenshot(&mut self, path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        self.send(json!({"op": "screenshot", "path": path})).await;
    }

    /// Ends the input, which makes the driver close the browser, and waits for it to exit.
    async fn close(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the browser driver did not exit")
            .unwrap();
        assert!(status.success(), "the browser driver exited with {status}");
    }
}

fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `target/browser` of this workspace (or of `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("browser")
}
