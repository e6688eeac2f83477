//! OAuth sign-in (SPEC §9) against a real OpenID provider process: oauth2-mock-server
//! (`tests/oauth-provider/provider.mjs`), driven through the whole redirect chain by an HTTP
//! client that keeps the browser's cookie, as a browser would.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::{Value, json};

use crate::harness::TestServer;

/// The provider process; it stops when its stdin closes (on drop).
struct ProviderProcess {
    url: String,
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider() -> ProviderProcess {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth-provider");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/oauth2-mock-server")
            .exists(),
        "oauth2-mock-server is missing: run `npm ci` in {dir} (cargo xtask test does)"
    );
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node must run the OpenID provider");
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).expect("the provider prints its URL");
    ProviderProcess {
        url: v["url"].as_str().unwrap().to_owned(),
        child,
        _stdin: stdin,
    }
}

async fn set_profile(provider: &ProviderProcess, client_id: &str, profile: Value) {
    let res = reqwest::Client::new()
        .put(format!("{}/__profile/{client_id}", provider.url))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("a redirect, got {}", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Follows the chain: `/oauth/oidc` → the provider → our callback → `redirect_url`. Returns
/// the final `Location`.
async fn sign_in(server: &TestServer, kind: &str, redirect_url: &str) -> url::Url {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let start = browser
        .get(server.url(&format!("/oauth/{kind}?redirect_url={redirect_url}")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 302);
    let at_provider = browser.get(location(&start)).send().await.unwrap();
    let callback = location(&at_provider);
    assert!(callback.starts_with(&server.url(&format!("/oauth/{kind}/callback"))));
    let back = browser.get(&callback).send().await.unwrap();
    assert_eq!(
        back.status().as_u16(),
        302,
        "{}",
        back.text().await.unwrap()
    );
    url::Url::parse(&location(&back)).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn oidc_server(
    provider: &ProviderProcess,
    client_id: &str,
    extra: &[(&str, &str)],
) -> TestServer {
    let mut vars = vec![
        ("OAUTH_PROVIDERS", "oidc"),
        ("OIDC_ISSUER_URL", provider.url.as_str()),
        ("OIDC_CLIENT_ID", client_id),
        ("OIDC_CLIENT_SECRET", "provider-secret"),
    ];
    vars.extend_from_slice(extra);
    TestServer::with(&vars).await
}

#[tokio::test]
async fn oidc_sign_in_creates_a_verified_user_and_the_code_is_single_use() {
    let provider = start_provider();
    set_profile(
        &provider,
        "client-happy",
        json!({"sub": "subject-1", "claims": {"email": "Ada@Example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_server(&provider, "client-happy", &[]).await;
    let redirect = server.url("/form");
    let back = sign_in(&server, "oidc", &redirect).await;
    assert!(back.as_str().starts_with(&redirect));
    assert_eq!(param(&back, "error"), None);
    let code = param(&back, "code").expect("a one-time code");
    let tokens = server.post("/oauth/token", json!({"code": code})).await;
    let access = tokens.ok()["access_token"].as_str().unwrap().to_owned();
    let user = server.get("/user", Some(&access)).await;
    assert_eq!(user.ok()["user"]["email"], "ada@example.org");
    assert!(user.body["user"]["verified_at"].is_string());
    server
        .post("/oauth/token", json!({"code": code}))
        .await
        .expect(400, "invalid_code");
}

#[tokio::test]
async fn an_unverified_provider_email_creates_nothing() {
    let provider = start_provider();
    set_profile(
        &provider,
        "client-unverified",
        json!({"sub": "subject-2", "claims": {"email": "eve@example.org", "email_verified": false}}),
    )
    .await;
    let server = oidc_server(&provider, "client-unverified", &[]).await;
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("email_not_verified"));
    let email = authura_core::Email::parse("eve@example.org").unwrap();
    assert!(
        server
            .state
            .ctx()
            .store
            .find_by_email(None, &email)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn denied_consent_and_signup_disabled_redirect_with_their_codes() {
    let provider = start_provider();
    set_profile(&provider, "client-deny", json!({"sub": "s3", "deny": true})).await;
    let server = oidc_server(&provider, "client-deny", &[]).await;
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));

    set_profile(
        &provider,
        "client-nosignup",
        json!({"sub": "s4", "claims": {"email": "new@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_server(&provider, "client-nosignup", &[("SIGNUP_DISABLED", "true")]).await;
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("signup_disabled"));
    let email = authura_core::Email::parse("new@example.org").unwrap();
    assert!(
        server
            .state
            .ctx()
            .store
            .find_by_email(None, &email)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_tampered_state_is_400_and_a_missing_cookie_redirects_invalid_state() {
    let provider = start_provider();
    set_profile(
        &provider,
        "client-state",
        json!({"sub": "s5", "claims": {"email": "mallory@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_server(&provider, "client-state", &[]).await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(server.url("/oauth/oidc?redirect_url=") + &server.url("/form"))
        .send()
        .await
        .unwrap();
    let at_provider = browser.get(location(&start)).send().await.unwrap();
    let callback = url::Url::parse(&location(&at_provider)).unwrap();
    // No cookie (another browser): a valid state, so a redirect with the error.
    let res = browser.get(callback.as_str()).send().await.unwrap();
    let back = url::Url::parse(&location(&res)).unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_state"));
    // A tampered state: 400.
    let mut tampered = callback.clone();
    let state = param(&callback, "state").unwrap();
    let code = param(&callback, "code").unwrap();
    tampered
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &format!("{state}x"));
    server
        .send(server.client.get(tampered.as_str()))
        .await
        .expect(400, "invalid_state");
    let email = authura_core::Email::parse("mallory@example.org").unwrap();
    assert!(
        server
            .state
            .ctx()
            .store
            .find_by_email(None, &email)
            .await
            .unwrap()
            .is_none()
    );
}
