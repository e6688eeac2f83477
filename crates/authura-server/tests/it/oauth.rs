//! OAuth sign-in (SPEC §9) against a real OpenID provider process: oauth2-mock-server
//! (`tests/oauth-provider/provider.mjs`), driven through the whole redirect chain by an HTTP
//! client that keeps the browser's cookie, as a browser would.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::{Value, json};

use crate::harness::{TestServer, both_backends};

/// The provider process; it stops when its stdin closes (on drop).
pub(crate) struct ProviderProcess {
    pub(crate) url: String,
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_provider() -> ProviderProcess {
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

pub(crate) async fn set_profile(provider: &ProviderProcess, client_id: &str, profile: Value) {
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

/// No user with this address exists (in the default tenant).
async fn assert_no_user(server: &TestServer, email: &str) {
    let email = authura_core::Email::parse(email).unwrap();
    assert!(
        server
            .state
            .ctx()
            .store
            .find_by_email(None, &email)
            .await
            .unwrap()
            .is_none(),
        "{email} must not exist"
    );
}

/// Exchanges the one-time code of a successful sign-in and returns the signed-in user.
async fn user_of(server: &TestServer, back: &url::Url) -> Value {
    assert_eq!(param(back, "error"), None, "{back}");
    let code = param(back, "code").expect("a one-time code");
    let tokens = server.post("/oauth/token", json!({"code": code})).await;
    let access = tokens.ok()["access_token"].as_str().unwrap().to_owned();
    server.get("/user", Some(&access)).await.ok()["user"].clone()
}

#[tokio::test]
async fn forged_id_tokens_are_refused_and_change_nothing() {
    let provider = start_provider();
    let client = "client-forge";
    let server = oidc_server(&provider, client, &[]).await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(2)).timestamp();
    let evil = format!("{}/evil", provider.url);
    let forgeries = [
        (
            "nonce",
            json!({"claims": {"nonce": "not-the-nonce-we-sent"}}),
        ),
        ("aud", json!({"claims": {"aud": "another-client"}})),
        ("iss", json!({"claims": {"iss": evil}})),
        ("exp", json!({"claims": {"exp": past}})),
        (
            "unknown kid",
            json!({"kid": "a-key-the-jwks-does-not-have"}),
        ),
        ("alg none", json!({"id_token": "alg-none"})),
        ("hs256 with the public key", json!({"id_token": "hs256"})),
        ("foreign key", json!({"id_token": "foreign-key"})),
        (
            "tampered payload",
            json!({"id_token": "tampered", "tamper_email": "victim@example.org"}),
        ),
    ];
    for (i, (what, forgery)) in forgeries.into_iter().enumerate() {
        let email = format!("forged-{i}@example.org");
        let mut profile = json!({"sub": format!("forged-{i}"),
            "claims": {"email": email, "email_verified": true}});
        for (k, v) in forgery.as_object().unwrap() {
            if k == "claims" {
                for (ck, cv) in v.as_object().unwrap() {
                    profile["claims"][ck] = cv.clone();
                }
            } else {
                profile[k] = v.clone();
            }
        }
        set_profile(&provider, client, profile).await;
        let back = sign_in(&server, "oidc", &server.url("/form")).await;
        assert_eq!(
            param(&back, "error").as_deref(),
            Some("provider_error"),
            "{what}: {back}"
        );
        assert_eq!(param(&back, "code"), None, "{what}");
        assert_no_user(&server, &email).await;
    }
    assert_no_user(&server, "victim@example.org").await;
    // The same provider and client, honest this time: the refusals were the forgeries'.
    set_profile(
        &provider,
        client,
        json!({"sub": "honest", "claims": {"email": "honest@example.org", "email_verified": true}}),
    )
    .await;
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    assert_eq!(user_of(&server, &back).await["email"], "honest@example.org");
}

#[tokio::test]
async fn a_replayed_callback_and_racing_code_exchanges_sign_in_once() {
    let provider = start_provider();
    let client = "client-replay";
    set_profile(
        &provider,
        client,
        json!({"sub": "replay", "claims": {"email": "replay@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_server(&provider, client, &[]).await;
    // A browser whose cookie the attacker copied: the cookie header is sent by hand.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(server.url("/oauth/oidc?redirect_url=") + &server.url("/form"))
        .send()
        .await
        .unwrap();
    let cookie = start
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let at_provider = browser.get(location(&start)).send().await.unwrap();
    let callback = location(&at_provider);
    let first = browser
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let first = url::Url::parse(&location(&first)).unwrap();
    let code = param(&first, "code").expect("the first callback signs in");
    // The same callback again, with the same cookie: the provider refuses its used code.
    let again = browser
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let again = url::Url::parse(&location(&again)).unwrap();
    assert_eq!(param(&again, "error").as_deref(), Some("provider_error"));
    assert_eq!(param(&again, "code"), None);

    // Twenty exchanges of one code at once: exactly one gets tokens.
    let answers = futures_util::future::join_all(
        (0..20).map(|_| server.post("/oauth/token", json!({"code": code}))),
    )
    .await;
    let won = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(won, 1, "exactly one exchange wins");
    for a in answers.iter().filter(|a| a.status != 200) {
        a.expect(400, "invalid_code");
    }
}

#[tokio::test]
async fn google_signs_in_through_its_discovery_document() {
    let provider = start_provider();
    let client = "client-google";
    set_profile(
        &provider,
        client,
        json!({"sub": "108", "claims": {"email": "grace@example.org", "email_verified": true}}),
    )
    .await;
    let server = TestServer::with(&[
        ("OAUTH_PROVIDERS", "google"),
        ("GOOGLE_ISSUER_URL", provider.url.as_str()),
        ("GOOGLE_CLIENT_ID", client),
        ("GOOGLE_CLIENT_SECRET", "provider-secret"),
    ])
    .await;
    let back = sign_in(&server, "google", &server.url("/form")).await;
    assert_eq!(user_of(&server, &back).await["email"], "grace@example.org");
    // Google's unverified address: nothing.
    set_profile(
        &provider,
        client,
        json!({"sub": "109", "claims": {"email": "gus@example.org", "email_verified": false}}),
    )
    .await;
    let back = sign_in(&server, "google", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("email_not_verified"));
    assert_no_user(&server, "gus@example.org").await;
}

#[tokio::test]
async fn a_multi_tenant_microsoft_app_needs_xms_edov_and_a_single_tenant_one_does_not() {
    let provider = start_provider();
    let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let token_iss = format!("{}/{tid}/v2.0", provider.url);
    let common = format!("{}/common/v2.0", provider.url);
    let client = "client-entra-common";
    let server = TestServer::with(&[
        ("OAUTH_PROVIDERS", "microsoft"),
        ("MICROSOFT_TENANT", "common"),
        ("MICROSOFT_ISSUER_URL", common.as_str()),
        ("MICROSOFT_CLIENT_ID", client),
        ("MICROSOFT_CLIENT_SECRET", "provider-secret"),
    ])
    .await;
    // nOAuth: an `email` an attacker's tenant can set, without `xms_edov`: refused.
    set_profile(
        &provider,
        client,
        json!({"sub": "m1", "claims": {"email": "ceo@example.org", "tid": tid, "iss": token_iss}}),
    )
    .await;
    let back = sign_in(&server, "microsoft", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("email_not_verified"));
    assert_no_user(&server, "ceo@example.org").await;
    // A token whose `iss` names another tenant than its `tid`: refused.
    set_profile(
        &provider,
        client,
        json!({"sub": "m2", "claims": {"email": "m2@example.org", "xms_edov": true,
            "tid": tid, "iss": format!("{}/another-tenant/v2.0", provider.url)}}),
    )
    .await;
    let back = sign_in(&server, "microsoft", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("provider_error"));
    assert_no_user(&server, "m2@example.org").await;
    // The domain owner verified: signed in.
    set_profile(
        &provider,
        client,
        json!({"sub": "m3", "claims": {"email": "Verified@Example.org", "xms_edov": true,
            "tid": tid, "iss": token_iss}}),
    )
    .await;
    let back = sign_in(&server, "microsoft", &server.url("/form")).await;
    assert_eq!(
        user_of(&server, &back).await["email"],
        "verified@example.org"
    );

    // A single-tenant app: the tenant's own users, no `xms_edov` needed.
    let client = "client-entra-single";
    let single = format!("{}/{tid}/v2.0", provider.url);
    let server = TestServer::with(&[
        ("OAUTH_PROVIDERS", "microsoft"),
        ("MICROSOFT_TENANT", tid),
        ("MICROSOFT_ISSUER_URL", single.as_str()),
        ("MICROSOFT_CLIENT_ID", client),
        ("MICROSOFT_CLIENT_SECRET", "provider-secret"),
    ])
    .await;
    set_profile(
        &provider,
        client,
        json!({"sub": "m4", "claims": {"email": "staff@example.org", "tid": tid, "iss": token_iss}}),
    )
    .await;
    let back = sign_in(&server, "microsoft", &server.url("/form")).await;
    assert_eq!(user_of(&server, &back).await["email"], "staff@example.org");
}

#[tokio::test]
async fn github_signs_in_with_the_primary_verified_address_only() {
    let provider = start_provider();
    let client = "client-github";
    let gh = |path: &str| format!("{}/github{path}", provider.url);
    let (auth, token, user) = (
        gh("/login/oauth/authorize"),
        gh("/login/oauth/access_token"),
        gh("/api/user"),
    );
    let server = TestServer::with(&[
        ("OAUTH_PROVIDERS", "github"),
        ("GITHUB_CLIENT_ID", client),
        ("GITHUB_CLIENT_SECRET", "provider-secret"),
        ("GITHUB_AUTH_URL", auth.as_str()),
        ("GITHUB_TOKEN_URL", token.as_str()),
        ("GITHUB_USERINFO_URL", user.as_str()),
    ])
    .await;
    // The primary address is unverified; a verified secondary one does not count.
    set_profile(
        &provider,
        client,
        json!({"github": {"id": 1001, "login": "mona", "emails": [
            {"email": "mona@example.org", "primary": true, "verified": false, "visibility": "public"},
            {"email": "mona@work.example", "primary": false, "verified": true, "visibility": null}
        ]}}),
    )
    .await;
    let back = sign_in(&server, "github", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("email_not_verified"));
    assert_no_user(&server, "mona@example.org").await;
    assert_no_user(&server, "mona@work.example").await;
    // Primary and verified (and private: `/user` shows no address): signed in with it.
    set_profile(
        &provider,
        client,
        json!({"github": {"id": 583231, "login": "octocat", "emails": [
            {"email": "octo@work.example", "primary": false, "verified": true, "visibility": null},
            {"email": "Octocat@Example.org", "primary": true, "verified": true, "visibility": "private"}
        ]}}),
    )
    .await;
    let back = sign_in(&server, "github", &server.url("/form")).await;
    assert_eq!(
        user_of(&server, &back).await["email"],
        "octocat@example.org"
    );
    // Denied at GitHub.
    set_profile(&provider, client, json!({"deny": true})).await;
    let back = sign_in(&server, "github", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
}

/// A server with sessions on (so a state store keeps the links), on the test's backend, signing
/// in with `client` at the provider.
async fn oidc_session_server(provider: &ProviderProcess, client: &str) -> crate::check::Server {
    crate::check::server(&[
        ("OAUTH_PROVIDERS", "oidc"),
        ("OIDC_ISSUER_URL", provider.url.as_str()),
        ("OIDC_CLIENT_ID", client),
        ("OIDC_CLIENT_SECRET", "provider-secret"),
        ("SESSION_COOKIE_SECURE", "false"),
    ])
    .await
}

/// The server's OAuth link store.
fn links_of(server: &TestServer) -> &dyn authura_core::state::OAuthLinkStore {
    server
        .state
        .state_store()
        .expect("sessions on: a state store")
        .oauth_links()
        .expect("every state store keeps OAuth links")
}

/// SPEC §9's links, on every state store: the first sign-in links (provider, subject) to the
/// user; a later one with a changed provider address reaches the same user; another subject
/// showing up with a linked user's address is refused.
async fn a_linked_subject_keeps_its_user() {
    let provider = start_provider();
    let client = "client-link";
    set_profile(
        &provider,
        client,
        json!({"sub": "link-1", "claims": {"email": "first@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_session_server(&provider, client).await;
    let links = links_of(&server);
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    let first = user_of(&server, &back).await;
    assert_eq!(first["email"], "first@example.org");
    let link = links
        .find_oauth_link(None, "oidc", "link-1")
        .await
        .unwrap()
        .expect("the first sign-in links the subject");
    assert_eq!(link.user_id.to_json(), first["id"]);

    // The provider's address changed: the link still reaches the same user (whose own address
    // stays), and no account is made for the new address.
    set_profile(
        &provider,
        client,
        json!({"sub": "link-1", "claims": {"email": "renamed@example.org", "email_verified": true}}),
    )
    .await;
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    let again = user_of(&server, &back).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["email"], "first@example.org");
    assert_no_user(&server, "renamed@example.org").await;

    // Another subject of the same provider with the linked user's address: refused, not linked.
    set_profile(
        &provider,
        client,
        json!({"sub": "link-2", "claims": {"email": "first@example.org", "email_verified": true}}),
    )
    .await;
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        links.find_oauth_link(None, "oidc", "link-2").await.unwrap(),
        None
    );
}
both_backends!(a_linked_subject_keeps_its_user);

#[tokio::test]
async fn a_sign_in_stays_in_the_tenant_that_started_it() {
    let provider = start_provider();
    let client = "client-tenant";
    set_profile(
        &provider,
        client,
        json!({"sub": "t-1", "claims": {"email": "tess@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_server(
        &provider,
        client,
        &[
            ("MULTI_TENANT_ENABLED", "true"),
            ("SQLITE_INITIAL_USER", ""),
            ("SQLITE_INITIAL_USER_PASSWORD", ""),
        ],
    )
    .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let start = browser
        .get(server.url("/oauth/oidc?redirect_url=") + &server.url("/form"))
        .header("X-Tenant-ID", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 302);
    let at_provider = browser.get(location(&start)).send().await.unwrap();
    let callback = location(&at_provider);
    // The callback arriving in another tenant: its state is not for this one.
    let elsewhere = browser
        .get(&callback)
        .header("X-Tenant-ID", "globex")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status().as_u16(), 400);
    let body: Value = elsewhere.json().await.unwrap();
    assert_eq!(body["error"], "invalid_state");
    // In its own tenant it signs in; the code works only there.
    let home = browser
        .get(&callback)
        .header("X-Tenant-ID", "acme")
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(&location(&home)).unwrap();
    let code = param(&back, "code").expect("a one-time code");
    let in_tenant = |t: &'static str| {
        server
            .client
            .post(server.url("/oauth/token"))
            .header("X-Tenant-ID", t)
            .json(&json!({"code": code}))
    };
    // A code presented in another tenant is refused, and burnt: a leaked code is worth one try.
    server
        .send(in_tenant("globex"))
        .await
        .expect(400, "invalid_code");
    server
        .send(in_tenant("acme"))
        .await
        .expect(400, "invalid_code");
    // The user the callback found or made is in the tenant that started the sign-in only.
    let email = authura_core::Email::parse("tess@example.org").unwrap();
    let store = &server.state.ctx().store;
    let acme = authura_core::types::TenantId::parse("acme").unwrap();
    let globex = authura_core::types::TenantId::parse("globex").unwrap();
    assert!(
        store
            .find_by_email(Some(&acme), &email)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_by_email(Some(&globex), &email)
            .await
            .unwrap()
            .is_none()
    );
}

/// A browser (it keeps cookies, follows no redirect) that started a sign-in with `kind` and was
/// sent back by the provider: it and the callback URL, not yet followed.
async fn at_callback(server: &TestServer, kind: &str) -> (reqwest::Client, url::Url) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let start = browser
        .get(server.url(&format!("/oauth/{kind}?redirect_url=")) + &server.url("/form"))
        .send()
        .await
        .unwrap();
    let at_provider = browser.get(location(&start)).send().await.unwrap();
    let callback = url::Url::parse(&location(&at_provider)).unwrap();
    (browser, callback)
}

/// `callback` with its query replaced by `pairs`.
fn with_query(callback: &url::Url, pairs: &[(&str, &str)]) -> String {
    let mut url = callback.clone();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

#[tokio::test]
async fn an_expired_state_and_a_provider_error_are_refused_and_create_nothing() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use chrono::Utc;

    let provider = start_provider();
    set_profile(
        &provider,
        "client-late",
        json!({"sub": "late-1", "claims": {"email": "late@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_server(&provider, "client-late", &[]).await;
    let (browser, callback) = at_callback(&server, "oidc").await;
    let state = param(&callback, "state").unwrap();
    let code = param(&callback, "code").unwrap();
    // The state's own claims (this browser's binding, the nonce), signed again by the server's
    // key at another time: only the time differs from the state the provider echoed.
    let payload = URL_SAFE_NO_PAD
        .decode(state.split('.').nth(1).unwrap())
        .unwrap();
    let claims: authura_core::token::OAuthStateClaims = serde_json::from_slice(&payload).unwrap();
    let tokens = &server.state.ctx().tokens;
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(authura_core::token::OAUTH_STATE_TTL).unwrap();
    let expired = tokens
        .issue_oauth_state(claims.clone(), now - ttl - chrono::Duration::minutes(1))
        .unwrap();
    let res = browser
        .get(with_query(
            &callback,
            &[("code", &code), ("state", &expired)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_state");
    assert_no_user(&server, "late@example.org").await;
    // Signed nine minutes ago, the same claims still hold: it was the expiry that refused.
    let recent = tokens
        .issue_oauth_state(claims, now - chrono::Duration::minutes(9))
        .unwrap();
    let res = browser
        .get(with_query(
            &callback,
            &[("code", &code), ("state", &recent)],
        ))
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(&location(&res)).unwrap();
    assert_eq!(user_of(&server, &back).await["email"], "late@example.org");

    // A provider's error other than a refused consent: `provider_error` on the redirect URL,
    // and the code that came with nothing is never exchanged.
    set_profile(
        &provider,
        "client-late",
        json!({"sub": "late-2", "claims": {"email": "later@example.org", "email_verified": true}}),
    )
    .await;
    let (browser, callback) = at_callback(&server, "oidc").await;
    let state = param(&callback, "state").unwrap();
    let res = browser
        .get(with_query(
            &callback,
            &[("error", "temporarily_unavailable"), ("state", &state)],
        ))
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(&location(&res)).unwrap();
    assert!(back.as_str().starts_with(&server.url("/form")), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("provider_error"));
    assert_eq!(param(&back, "code"), None);
    assert_no_user(&server, "later@example.org").await;
}

/// A row of the users table whose address was never verified, with the password `PW` (an
/// account made before the operator required verification, or by their own tooling).
async fn unverified_user(server: &TestServer, email: &str) -> authura_core::User {
    let ctx = server.state.ctx();
    let password_hash = ctx
        .hasher
        .hash(authura_core::Secret::new(crate::harness::PW.to_owned()))
        .await
        .unwrap();
    ctx.store
        .create(authura_core::NewUser {
            email: authura_core::Email::parse(email).unwrap(),
            role: authura_core::Role::parse("user").unwrap(),
            tenant: None,
            password_hash,
            verified_at: None,
        })
        .await
        .unwrap()
}

/// Whether the user with `email` (default tenant) is verified.
async fn is_verified(server: &TestServer, email: &str) -> bool {
    let email = authura_core::Email::parse(email).unwrap();
    let user = server.state.ctx().store.find_by_email(None, &email).await;
    user.unwrap()
        .expect("the user exists")
        .verified_at
        .is_some()
}

#[tokio::test]
async fn an_unverified_local_account_is_verified_and_its_password_replaced() {
    let provider = start_provider();
    set_profile(
        &provider,
        "client-claim",
        json!({"sub": "claim-1", "claims": {"email": "owner@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_server(&provider, "client-claim", &[]).await;
    // Someone set a password on the owner's address and never proved the mailbox.
    let squatter = unverified_user(&server, "owner@example.org").await;
    let id = squatter.id.to_json();
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    let user = user_of(&server, &back).await;
    assert_eq!(user["id"], id, "the same account, not a new one");
    assert!(user["verified_at"].is_string());
    // Whoever set the old password no longer signs in with it.
    server
        .post(
            "/token",
            json!({"email": "owner@example.org", "password": crate::harness::PW}),
        )
        .await
        .expect(401, "invalid_credentials");
}

/// An archived or a locked account does not sign in with a provider either, in either hand-over
/// (a one-time code, `mode=session`), and the refused sign-in writes nothing: no link, no
/// verification.
async fn archived_and_locked_accounts_cannot_sign_in_with_a_provider() {
    let provider = start_provider();
    let client = "client-closed";
    set_profile(
        &provider,
        client,
        json!({"sub": "closed-1", "claims": {"email": "closed@example.org", "email_verified": true}}),
    )
    .await;
    let server = oidc_session_server(&provider, client).await;
    let id = unverified_user(&server, "closed@example.org")
        .await
        .id
        .to_string();
    let admin = server.admin_token().await;
    let links = links_of(&server);
    for (close, open) in [("archive", "restore"), ("lock", "unlock")] {
        server
            .post_as(&format!("/admin/users/{id}/{close}"), &admin, json!({}))
            .await
            .ok();
        for mode in ["", "&mode=session"] {
            let redirect = server.url("/form") + mode;
            let back = sign_in(&server, "oidc", &redirect).await;
            assert_eq!(
                param(&back, "error").as_deref(),
                Some("access_denied"),
                "{close}{mode}: {back}"
            );
            assert_eq!(param(&back, "code"), None);
        }
        assert_eq!(
            links
                .find_oauth_link(None, "oidc", "closed-1")
                .await
                .unwrap(),
            None,
            "{close}: a refused sign-in links nothing"
        );
        assert!(
            !is_verified(&server, "closed@example.org").await,
            "{close}: nothing verified"
        );
        server
            .post_as(&format!("/admin/users/{id}/{open}"), &admin, json!({}))
            .await
            .ok();
    }
    // Open again: the provider signs in, and the account is verified and linked now.
    let back = sign_in(&server, "oidc", &server.url("/form")).await;
    assert_eq!(user_of(&server, &back).await["email"], "closed@example.org");
    assert!(is_verified(&server, "closed@example.org").await);
    assert!(
        links
            .find_oauth_link(None, "oidc", "closed-1")
            .await
            .unwrap()
            .is_some()
    );
}
both_backends!(archived_and_locked_accounts_cannot_sign_in_with_a_provider);
