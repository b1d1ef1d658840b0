// A real OpenID Provider for the console's single sign-on tests (tests/sso_provider.py): the npm
// `oidc-provider` package (OpenID Certified), one confidential client that must use PKCE (S256),
// RP-initiated logout, and a login form of its own that checks a password per test account.
// Usage: node oidc_provider.mjs <port> <accounts JSON file> <client JSON file>
//   accounts: {"<login>": {"password": "...", "claims": {"email": "...", ...}}}
//   client:   {"client_id", "client_secret", "redirect_uris", "post_logout_redirect_uris"}
// Prints one JSON line {"issuer": ...} once it listens.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import querystring from "node:querystring";

// The package is installed by the test run (tests/npm_packages.py) in a directory of its own.
const require = createRequire(path.join(process.env.OIDC_PROVIDER_MODULES, "x.js"));
const { default: Provider } = await import(require.resolve("oidc-provider"));

const [port, accountsFile, clientFile] = process.argv.slice(2);
const accounts = JSON.parse(fs.readFileSync(accountsFile, "utf8"));
const client = JSON.parse(fs.readFileSync(clientFile, "utf8"));
const issuer = `http://127.0.0.1:${port}`;
const signingKey = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
const SCOPES = "openid email profile groups";

const configuration = {
  clients: [
    {
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: client.redirect_uris,
      post_logout_redirect_uris: client.post_logout_redirect_uris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [{ ...signingKey, kid: "test-key-1", use: "sig", alg: "RS256" }] },
  cookies: { keys: [crypto.randomBytes(16).toString("hex")] },
  pkce: { required: () => true },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups", "teams"],
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = `<!DOCTYPE html><html><body><h1>Sign out of the test provider?</h1>${form}
<button id="sign-out" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button></body></html>`;
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // First-party client: the scopes asked for are granted without a consent page.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(SCOPES);
    await grant.save();
    return grant;
  },
  findAccount: async (ctx, sub) => {
    const account = accounts[sub];
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
  },
};

const provider = new Provider(issuer, configuration);
const callback = provider.callback();

function loginPage(uid, error) {
  const shown = error ? `<p id="error">${error}</p>` : "";
  return `<!DOCTYPE html><html><head><title>Test provider sign-in</title></head><body>
<h1>Sign in to the test provider</h1>${shown}
<form id="login" method="post" action="/interaction/${uid}/login">
<input id="username" name="login" autocomplete="username">
<input id="password" name="password" type="password" autocomplete="current-password">
<button id="sign-in" type="submit">Sign in</button>
</form></body></html>`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => resolve(querystring.parse(data)));
    req.on("error", reject);
  });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error("interaction mismatch");
  if (action === undefined) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(loginPage(uid));
    return;
  }
  const form = await readForm(req);
  const account = accounts[form.login];
  if (!account || account.password !== form.password) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(loginPage(uid, "Wrong username or password."));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
}

const server = http.createServer(async (req, res) => {
  const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(new URL(req.url, issuer).pathname);
  if (!match) return callback(req, res);
  try {
    await interaction(req, res, match[1], match[2] && req.method === "POST" ? "login" : undefined);
  } catch (err) {
    res.writeHead(400, { "content-type": "text/plain" });
    res.end(String(err && err.message));
  }
});

server.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ issuer }) + "\n");
});
