//! Asymmetric access tokens as a resource server sees them: tokens issued over HTTP with each
//! algorithm verify through `GET /.well-known/jwks.json` in PyJWT (an independent JWT library,
//! not our verifier), and a rotated-out key keeps verifying until it is removed.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::cli::{ED25519, GOOD, P256, RSA2048, good_without, openssl_key};
use crate::run::{Proc, dev_link, post, spawn};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "graphql";

/// PyJWT checks a token against our JWKS: it fetches the set with `PyJWKClient`, picks the key by
/// the token's `kid`, decodes with only the expected algorithm, audience and issuer, and checks
/// that the `kid` is the key's RFC 7638 thumbprint. Prints the claims as JSON.
const PYJWT_CHECK: &str = r#"
import base64, hashlib, json, sys
import jwt

jwks_url, token, alg, audience, issuer = sys.argv[1:6]
signing_key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
claims = jwt.decode(token, signing_key.key, algorithms=[alg], audience=audience, issuer=issuer)
header = jwt.get_unverified_header(token)
assert header["alg"] == alg, header
jwk = next(k for k in json.load(__import__("urllib.request").request.urlopen(jwks_url))["keys"] if k["kid"] == header["kid"])
required = {"RSA": ["e", "kty", "n"], "EC": ["crv", "kty", "x", "y"], "OKP": ["crv", "kty", "x"]}[jwk["kty"]]
canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
assert thumbprint == jwk["kid"], (thumbprint, jwk["kid"])
print(json.dumps(claims))
"#;

/// Verifies `token` with PyJWT through the server's JWKS; the decoded claims.
fn pyjwt_verify(proc: &Proc, token: &str, alg: &str) -> Value {
    let jwks = proc.url("/.well-known/jwks.json");
    authura_testkit::python::run_json(PYJWT_CHECK, &[&jwks, token, alg, AUDIENCE, ISSUER], b"")
        .unwrap_or_else(|e| panic!("PyJWT refused the {alg} token: {e}"))
}

/// `GOOD` with the access key `key_file` for `alg` instead of `JWT_SECRET`, plus iss/aud.
fn vars<'a>(alg: &'a str, key_file: &'a str, previous: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<(&str, &str)> = good_without("JWT_SECRET");
    v.extend([
        ("JWT_ALGORITHM", alg),
        ("JWT_PRIVATE_KEY_FILE", key_file),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
        ("JWT_EXTENSIONS", "hasura"),
    ]);
    if let Some(p) = previous {
        v.push(("JWT_PREVIOUS_KEYS_FILE", p));
    }
    v
}

/// Signs `email` up and verifies it over HTTP (the dummy mailer logs the link); the access token.
async fn sign_up(client: &reqwest::Client, proc: &Proc, email: &str) -> String {
    post(client, proc.url("/signup"), json!({"email": email})).await;
    let log = proc.wait_for_log(&format!("to={email}"));
    let token = dev_link(&log[log.rfind(&format!("to={email}")).unwrap()..]);
    let v = post(
        client,
        proc.url("/verify-email"),
        json!({"token": token, "password": "Str0ng!pass"}),
    )
    .await;
    v["tokens"]["access_token"].as_str().unwrap().to_owned()
}

async fn user_status(client: &reqwest::Client, proc: &Proc, token: &str) -> u16 {
    client
        .get(proc.url("/user"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn jwks(client: &reqwest::Client, proc: &Proc) -> Value {
    let res = client
        .get(proc.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"].to_str().unwrap(),
        "public, max-age=300"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    res.json().await.unwrap()
}

fn key_file(dir: &Path, name: &str, alg: &str) -> String {
    let args = match alg {
        "RS256" => RSA2048,
        "ES256" => P256,
        _ => ED25519,
    };
    openssl_key(dir, name, args)
}

#[tokio::test]
async fn tokens_of_every_algorithm_verify_through_the_jwks_in_pyjwt() {
    let client = reqwest::Client::new();
    for (alg, kty) in [("RS256", "RSA"), ("ES256", "EC"), ("EdDSA", "OKP")] {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path(), "key.pem", alg);
        let proc = spawn(&["serve"], &vars(alg, &key, None), dir.path());
        let token = sign_up(&client, &proc, "ann@example.com").await;
        let set = jwks(&client, &proc).await;
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{set}");
        assert_eq!(keys[0]["kty"], kty);
        assert_eq!(keys[0]["alg"], alg);
        assert_eq!(keys[0]["use"], "sig");
        assert!(
            keys[0].get("d").is_none(),
            "private material published: {set}"
        );
        let claims = pyjwt_verify(&proc, &token, alg);
        assert_eq!(claims["email"], "ann@example.com", "{alg}");
        assert_eq!(claims["purpose"], "access");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(
            claims["https://hasura.io/jwt/claims"]["x-hasura-default-role"],
            "user"
        );
        assert_eq!(user_status(&client, &proc, &token).await, 200, "{alg}");
        // HEAD like every GET route; other methods 405.
        let head = client
            .head(proc.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        let post = client
            .post(proc.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 405);
    }
}

#[tokio::test]
async fn hs256_publishes_an_empty_key_set() {
    let dir = tempfile::tempdir().unwrap();
    let proc = spawn(&["serve"], GOOD, dir.path());
    let set = jwks(&reqwest::Client::new(), &proc).await;
    assert_eq!(set, json!({"keys": []}));
}

/// Rotation without logouts: a token issued under key A is still accepted after a restart with
/// key B current and A (its whole private key file, moved) in `JWT_PREVIOUS_KEYS`, where A is
/// also published; once A is removed the token is refused.
#[tokio::test]
async fn a_rotated_out_key_keeps_verifying_until_removed() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let a = key_file(dir.path(), "a.pem", "ES256");
    let b = key_file(dir.path(), "b.pem", "EdDSA");
    let old = {
        let proc = spawn(&["serve"], &vars("ES256", &a, None), dir.path());
        sign_up(&client, &proc, "ann@example.com").await
    };
    let a_kid = crate::run::header_kid(&old);
    {
        let proc = spawn(&["serve"], &vars("EdDSA", &b, Some(&a)), dir.path());
        assert_eq!(user_status(&client, &proc, &old).await, 200);
        let set = jwks(&client, &proc).await;
        let kids: Vec<&str> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 2, "{set}");
        assert_eq!(
            kids[1], a_kid,
            "the previous key is published after the current one"
        );
        // A resource server verifying through the JWKS accepts it too.
        pyjwt_verify(&proc, &old, "ES256");
        // New tokens are signed with B.
        let new = post(
            &client,
            proc.url("/token"),
            json!({"email": "ann@example.com", "password": "Str0ng!pass"}),
        )
        .await;
        let new = new["access_token"].as_str().unwrap();
        assert_eq!(crate::run::header_kid(new), kids[0]);
        pyjwt_verify(&proc, new, "EdDSA");
    }
    let proc = spawn(&["serve"], &vars("EdDSA", &b, None), dir.path());
    assert_eq!(user_status(&client, &proc, &old).await, 401);
    assert_eq!(
        jwks(&client, &proc).await["keys"].as_array().unwrap().len(),
        1
    );
}

/// Forges tokens with Python's own HMAC and PyJWT, from the real token's claims: the genuine
/// re-signing first (so a refusal is about the forgery alone), then each forgery. Prints
/// `[[name, token], …]`.
const FORGE: &str = r#"
import base64, hashlib, hmac, json, sys
import jwt

private_pem, public_pem_path, kid, token, audience = sys.argv[1:6]
public_pem = open(public_pem_path, "rb").read()
claims = jwt.decode(token, options={"verify_signature": False})
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def raw(header, claims, key):
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(sig)
der = base64.b64decode(b"".join(l for l in public_pem.splitlines() if not l.startswith(b"-----")))
key = open(private_pem).read()
out = [
    ["genuine", jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})],
    ["alg none", raw({"alg": "none", "typ": "JWT", "kid": kid}, claims, None)],
    ["HS256 keyed with the public PEM", raw({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, public_pem)],
    ["HS256 keyed with the public PEM, no kid", raw({"alg": "HS256", "typ": "JWT"}, claims, public_pem)],
    ["HS256 keyed with the public DER", raw({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, der)],
    ["unknown kid", jwt.encode(claims, key, algorithm="ES256", headers={"kid": "someone-elses"})],
    ["no kid", jwt.encode(claims, key, algorithm="ES256")],
    ["wrong audience", jwt.encode(dict(claims, aud="another-api"), key, algorithm="ES256", headers={"kid": kid})],
    ["no audience", jwt.encode({k: v for k, v in claims.items() if k != "aud"}, key, algorithm="ES256", headers={"kid": kid})],
]
print(json.dumps(out))
"#;

#[tokio::test]
async fn forged_tokens_are_refused_over_http() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "key.pem", "ES256");
    let public = dir.path().join("pub.pem");
    let out = Command::new("openssl")
        .args(["pkey", "-in", &key, "-pubout", "-out"])
        .arg(&public)
        .output()
        .unwrap();
    assert!(out.status.success());
    let proc = spawn(&["serve"], &vars("ES256", &key, None), dir.path());
    let token = sign_up(&client, &proc, "ann@example.com").await;
    let kid = crate::run::header_kid(&token);
    let forged: Vec<(String, String)> = authura_testkit::python::run_json(
        FORGE,
        &[&key, public.to_str().unwrap(), &kid, &token, AUDIENCE],
        b"",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for (name, token) in forged {
        let want = if name == "genuine" { 200 } else { 401 };
        assert_eq!(user_status(&client, &proc, &token).await, want, "{name}");
    }
}
