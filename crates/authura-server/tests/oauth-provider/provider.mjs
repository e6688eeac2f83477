// A real OpenID provider for authura-server's OAuth tests (tests/it/oauth.rs): oauth2-mock-server
// (discovery, JWKS, authorization endpoint with PKCE and nonce, token endpoint, userinfo),
// listening on a free loopback port. It prints one line, {"url": "<issuer>"}, once it listens.
//
// Each test uses its own client id and sets what the provider says about the user signing in
// with that client by `PUT /__profile/<client_id>` with a JSON body:
//   {"sub": "...", "claims": {"email": "...", "email_verified": true, "xms_edov": true, ...},
//    "deny": false}
// `claims` go into the ID token and the userinfo answer; `deny: true` makes the authorization
// endpoint answer `error=access_denied` (the user declined consent).
import http from "node:http";
import { OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";

const profiles = new Map();
const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);

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
    Object.assign(token.payload, profile.claims ?? {});
    if (profile.sub) token.payload.sub = profile.sub;
  } else {
    token.payload.client_id = client;
    if (profile.sub) token.payload.sub = profile.sub;
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

const handler = service.requestHandler;
const server = http.createServer((req, res) => {
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
