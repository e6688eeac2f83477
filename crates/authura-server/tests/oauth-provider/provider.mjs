// A real OpenID provider for authura-server's OAuth tests (tests/it/oauth.rs): oauth2-mock-server
// (discovery, JWKS, authorization endpoint with PKCE and nonce, token endpoint, userinfo),
// listening on a free loopback port. It prints one line, {"url": "<issuer>"}, once it listens.
//
// Each test uses its own client id and sets what the provider says about the user signing in
// with that client by `PUT /__profile/<client_id>` with a JSON body:
//   {"sub": "...", "claims": {"email": "...", "email_verified": true, "xms_edov": true, ...},
//    "deny": false}
// `claims` go into the ID token (after the provider's own, so `iss`, `aud`, `nonce`, `exp` can be
// forged) and the userinfo answer; `deny: true` makes the authorization endpoint answer
// `error=access_denied` (the user declined consent). Forgeries of the ID token, for the tests
// that Authura refuses them:
//   "kid": "<kid>"             the header names a key the JWKS does not have;
//   "id_token": "alg-none"     the token re-encoded unsigned with `alg: none`;
//   "id_token": "hs256"        re-signed with HS256 and the RSA key's public modulus as secret;
//   "id_token": "foreign-key"  signed by another RSA key under the real key's kid;
//   "id_token": "tampered"     the payload's `email` replaced after signing (`tamper_email`).
//
// Microsoft Entra's tenant-scoped discovery: `GET /<tenant>/v2.0/.well-known/openid-configuration`
// answers the provider's document with Entra's issuer: `<url>/{tenantid}/v2.0` for `common`,
// `organizations` and `consumers`, else `<url>/<tenant>/v2.0` (tokens then need that `iss`, set
// by `claims`).
//
// GitHub's OAuth app endpoints (not OpenID), under `/github`: `GET /github/login/oauth/authorize`
// (302 back with `code` and `state`, PKCE S256 checked when a challenge was sent),
// `POST /github/login/oauth/access_token` (form body; answers 200 with `{"error":
// "bad_verification_code"}` for an unknown, used or mismatched code, as GitHub does), and the REST
// API's `GET /github/api/user` and `GET /github/api/user/emails` (Bearer token; 401 otherwise).
// The profile's `github` object says who signs in: {"id": 583231, "login": "octocat",
// "emails": [{"email": "...", "primary": true, "verified": true, "visibility": "public"}]}.
import crypto from "node:crypto";
import http from "node:http";
import { OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";

const profiles = new Map();
const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);
// Another key pair, never published: the "foreign-key" forgery signs with it.
const rogue = new OAuth2Issuer();
await rogue.keys.generate("RS256");

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const decodePart = (part) => JSON.parse(Buffer.from(part, "base64url").toString());

function clientOf(req) {
  const auth = req.headers["authorization"];
  if (auth && auth.startsWith("Basic ")) {
    return decodeURIComponent(Buffer.from(auth.slice(6), "base64").toString().split(":")[0]);
  }
  return req.body?.client_id;
}

service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const client = new URL(req.url, "http://x").searchParams.get("client_id");
  if (profiles.get(client)?.deny) {
    redirect.url.searchParams.delete("code");
    redirect.url.searchParams.set("error", "access_denied");
  }
});

service.on("beforeTokenSigning", (token, req) => {
  const client = clientOf(req);
  const profile = profiles.get(client) ?? {};
  if (token.payload.aud === client) {
    // The ID token.
    if (profile.sub) token.payload.sub = profile.sub;
    Object.assign(token.payload, profile.claims ?? {});
    if (profile.kid) token.header.kid = profile.kid;
  } else {
    token.payload.client_id = client;
    if (profile.sub) token.payload.sub = profile.sub;
  }
});

service.on("beforeResponse", (response, req) => {
  const profile = profiles.get(clientOf(req)) ?? {};
  const idToken = response.body?.id_token;
  if (!idToken || !profile.id_token) return;
  const [h, p, sig] = idToken.split(".");
  const header = decodePart(h);
  const payload = decodePart(p);
  switch (profile.id_token) {
    case "alg-none":
      response.body.id_token = `${b64url({ ...header, alg: "none" })}.${p}.`;
      break;
    case "hs256": {
      const jwk = issuer.keys.toJSON()[0];
      const head = b64url({ ...header, alg: "HS256" });
      const mac = crypto.createHmac("sha256", Buffer.from(jwk.n, "base64url"))
        .update(`${head}.${p}`).digest("base64url");
      response.body.id_token = `${head}.${p}.${mac}`;
      break;
    }
    case "tampered":
      payload.email = profile.tamper_email;
      response.body.id_token = `${h}.${b64url(payload)}.${sig}`;
      break;
    default:
      break;
  }
});

service.on("beforeUserinfo", (response, req) => {
  const bearer = (req.headers["authorization"] ?? "").replace(/^Bearer /, "");
  let client;
  try {
    client = JSON.parse(Buffer.from(bearer.split(".")[1], "base64url").toString()).client_id;
  } catch {
    response.statusCode = 401;
    response.body = { error: "invalid_token" };
    return;
  }
  const profile = profiles.get(client) ?? {};
  response.body = { sub: profile.sub ?? "johndoe", ...(profile.claims ?? {}) };
});

// The "foreign-key" forgery: the whole token is signed again, by the unpublished key, under the
// real key's kid. (`beforeResponse` cannot wait for an async signature, so the token endpoint's
// answer is rewritten on its way out instead.)
async function foreignKeyToken(idToken) {
  const [h, p] = idToken.split(".");
  const header = decodePart(h);
  const payload = decodePart(p);
  rogue.url = issuer.url;
  const token = await rogue.buildToken({
    scopesOrTransform: (hd, pl) => Object.assign(pl, payload),
  });
  const [, rp, rs] = token.split(".");
  return `${b64url({ ...decodePart(token.split(".")[0]), kid: header.kid })}.${rp}.${rs}`;
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => resolve(body));
  });
}

function sendJson(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

// GitHub: codes and access tokens it handed out.
const githubCodes = new Map(); // code -> {client, redirect_uri, challenge}
const githubTokens = new Map(); // access token -> client

async function github(req, res, path) {
  const url = new URL(req.url, "http://x");
  if (path === "/login/oauth/authorize" && req.method === "GET") {
    const q = url.searchParams;
    const client = q.get("client_id");
    const back = new URL(q.get("redirect_uri"));
    if (profiles.get(client)?.deny) {
      back.searchParams.set("error", "access_denied");
    } else {
      const code = crypto.randomBytes(10).toString("hex");
      githubCodes.set(code, {
        client,
        redirect_uri: q.get("redirect_uri"),
        challenge: q.get("code_challenge"),
      });
      back.searchParams.set("code", code);
    }
    back.searchParams.set("state", q.get("state") ?? "");
    res.writeHead(302, { location: back.toString() }).end();
    return;
  }
  if (path === "/login/oauth/access_token" && req.method === "POST") {
    const form = new URLSearchParams(await readBody(req));
    let client = form.get("client_id");
    const auth = req.headers["authorization"];
    if (auth && auth.startsWith("Basic ")) {
      client = decodeURIComponent(Buffer.from(auth.slice(6), "base64").toString().split(":")[0]);
    }
    const grant = githubCodes.get(form.get("code"));
    githubCodes.delete(form.get("code"));
    const verifier = form.get("code_verifier") ?? "";
    const challengeOk = !grant?.challenge ||
      crypto.createHash("sha256").update(verifier).digest("base64url") === grant.challenge;
    if (!grant || grant.client !== client || !challengeOk ||
        (form.get("redirect_uri") && form.get("redirect_uri") !== grant.redirect_uri)) {
      sendJson(res, 200, {
        error: "bad_verification_code",
        error_description: "The code passed is incorrect or expired.",
      });
      return;
    }
    const token = `gho_${crypto.randomBytes(18).toString("hex")}`;
    githubTokens.set(token, client);
    sendJson(res, 200, { access_token: token, token_type: "bearer", scope: "read:user,user:email" });
    return;
  }
  const bearer = (req.headers["authorization"] ?? "").replace(/^(Bearer|token) /i, "");
  const client = githubTokens.get(bearer);
  const gh = profiles.get(client)?.github;
  if (req.method === "GET" && (path === "/api/user" || path === "/api/user/emails")) {
    if (!gh || !(req.headers["user-agent"] ?? "")) {
      sendJson(res, 401, { message: "Bad credentials" });
      return;
    }
    if (path === "/api/user") {
      const primary = (gh.emails ?? []).find((e) => e.primary && e.visibility === "public");
      sendJson(res, 200, { id: gh.id, login: gh.login, email: primary?.email ?? null });
    } else {
      sendJson(res, 200, gh.emails ?? []);
    }
    return;
  }
  sendJson(res, 404, { message: "Not Found" });
}

const handler = service.requestHandler;
const server = http.createServer(async (req, res) => {
  if (req.url.startsWith("/github/")) {
    await github(req, res, new URL(req.url, "http://x").pathname.slice("/github".length));
    return;
  }
  const entra = req.url.match(/^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/);
  if (entra && req.method === "GET") {
    const doc = await (await fetch(`${issuer.url}/.well-known/openid-configuration`)).json();
    const multi = ["common", "organizations", "consumers"].includes(entra[1]);
    doc.issuer = `${issuer.url}/${multi ? "{tenantid}" : entra[1]}/v2.0`;
    sendJson(res, 200, doc);
    return;
  }
  if (req.method === "POST" && req.url === "/token" &&
      [...profiles.values()].some((p) => p.id_token === "foreign-key")) {
    // Rewrite the token answer for clients whose profile asks for a foreign-key token.
    const send = res.end.bind(res);
    res.end = (chunk, ...rest) => {
      const client = clientOf(req);
      if (profiles.get(client)?.id_token !== "foreign-key" || !chunk) return send(chunk, ...rest);
      const body = JSON.parse(chunk.toString());
      if (!body.id_token) return send(chunk, ...rest);
      foreignKeyToken(body.id_token).then((t) => {
        body.id_token = t;
        const out = JSON.stringify(body);
        res.setHeader("content-length", Buffer.byteLength(out));
        send(out);
      });
      return res;
    };
  }
  const m = req.url.match(/^\/__profile\/([^/?]+)$/);
  if (m && req.method === "PUT") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      try {
        profiles.set(decodeURIComponent(m[1]), JSON.parse(body));
        res.writeHead(204).end();
      } catch (e) {
        res.writeHead(400).end(String(e));
      }
    });
    return;
  }
  handler(req, res);
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  issuer.url = `http://127.0.0.1:${port}`;
  process.stdout.write(JSON.stringify({ url: issuer.url }) + "\n");
});

// Stop when the test that started us goes away (its end of stdin closes).
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
