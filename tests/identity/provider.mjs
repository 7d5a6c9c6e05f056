// A real OpenID Provider for the identity tests: npm `oidc-provider` (OpenID
// Certified), on loopback. Started by tests/api/support (never by hand):
//
//   node tests/identity/provider.mjs          (PORT=0: a random port)
//
// It prints one JSON line, {"issuer": "http://127.0.0.1:PORT"}, once it
// listens. Its signing key is made fresh at every start (a restart on the
// same PORT is a key rotation, with a new `kid`).
//
// People (devInteractions' login form takes any password):
//   - `alice` (Alice Andersson), in `gateway-readers`;
//   - `bob` (Bob Berg), in `gateway-readers` and `gateway-writers`;
//   - `carol` (Carol Carlsson), in no group.
//
// Clients (all confidential, client_secret_basic):
//   - `gateway-web` (secret `gateway-web-secret`): the gateway's login,
//     authorization code with PKCE, redirect URI from REDIRECT_URI;
//   - `reporting` (secret `reporting-secret`): client credentials; its
//     access tokens carry `groups: ["gateway-readers"]`;
//   - `billing-bot` (secret `billing-bot-secret`): client credentials, no
//     groups; only its `scope` names gateway scopes.
// Resource servers (resource indicators, JWT access tokens, RS256):
//   `urn:gateway` (the gateway's audience) and `urn:other` (another API).
//
// Environment: PORT; REDIRECT_URI and BACKCHANNEL_URI (the gateway's
// /auth/callback and /auth/backchannel-logout); ACCESS_TOKEN_TTL (seconds);
// CONFORM_ID_TOKEN (claims in UserInfo only, not in the ID token).
//
// Test-only, beside the provider: `GET /__test/counts` says how many
// refresh token grants it answered; `POST /__test/person` changes a person
// (`{"sub": "bob", "groups": [...]}`, or `"disabled": true`, after which
// the provider refuses to renew their sessions); `POST /__test/sign` signs the JSON claims
// it is given with the provider's current key (as a token the provider
// could have issued), for the refusals the provider will not produce on
// request (expired, another issuer).
import { createServer } from 'node:http';
import { generateKeyPair, exportJWK, SignJWT } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = await exportJWK(privateKey);
jwk.kid = `key-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
jwk.alg = 'RS256';
jwk.use = 'sig';

const gatewayScopes = 'read write secrets';
const servers = {
  'urn:gateway': { scope: gatewayScopes, audience: 'urn:gateway' },
  'urn:other': { scope: gatewayScopes, audience: 'urn:other' },
};
const groups = { reporting: ['gateway-readers'] };
const people = {
  alice: { name: 'Alice Andersson', email: 'alice@example.com', groups: ['gateway-readers'] },
  bob: { name: 'Bob Berg', email: 'bob@example.com', groups: ['gateway-readers', 'gateway-writers'] },
  carol: { name: 'Carol Carlsson', email: 'carol@example.com', groups: [] },
};

const server = createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'gateway-web',
      client_secret: 'gateway-web-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [process.env.REDIRECT_URI || 'http://127.0.0.1/auth/callback'],
      post_logout_redirect_uris: [],
      ...(process.env.BACKCHANNEL_URI ? {
        backchannel_logout_uri: process.env.BACKCHANNEL_URI,
        backchannel_logout_session_required: true,
      } : {}),
    },
    {
      client_id: 'reporting',
      client_secret: 'reporting-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'billing-bot',
      client_secret: 'billing-bot-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access', ...gatewayScopes.split(' ')],
  claims: { openid: ['sub', 'groups'], profile: ['name'], email: ['email'] },
  // The person's claims in the ID token itself, unless CONFORM_ID_TOKEN is
  // set: then (OpenID Connect Core 5.4) only in UserInfo, which the gateway
  // then reads with the login's access token.
  conformIdTokenClaims: Boolean(process.env.CONFORM_ID_TOKEN),
  findAccount: (_ctx, sub) => {
    const person = people[sub];
    if (!person || person.disabled) return undefined;
    return { accountId: sub, claims: () => ({ sub, ...person }) };
  },
  // Refresh tokens for every client allowed the grant, as many providers do
  // for confidential web clients (oidc-provider's default also wants
  // prompt=consent with offline_access, OpenID Connect Core 11).
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // Access tokens live ACCESS_TOKEN_TTL seconds (default an hour), so a
  // test can see the gateway renew a session.
  ttl: {
    AccessToken: Number(process.env.ACCESS_TOKEN_TTL || 3600),
    ClientCredentials: 600,
    IdToken: 3600,
    RefreshToken: 86400,
    Grant: 86400,
    Session: 86400,
    Interaction: 600,
    AuthorizationCode: 60,
  },
  // Back-channel logout goes to the gateway on loopback, which the
  // provider's own fetch refuses (it guards against SSRF): test-only.
  fetch: (url, options) => {
    const { dispatcher: _guard, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  features: {
    backchannelLogout: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A login's access token is for UserInfo; services ask for the gateway.
      defaultResource: (_ctx, client) => (client.clientId === 'gateway-web' ? undefined : 'urn:gateway'),
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        const info = servers[resource];
        if (!info) throw new Provider.errors.InvalidTarget();
        return { ...info, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => {
    const clientGroups = groups[token.clientId];
    return clientGroups ? { groups: clientGroups } : undefined;
  },
});
provider.on('server_error', (_ctx, error) => console.error('provider error', error));
let refreshes = 0;
provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params.grant_type === 'refresh_token') refreshes += 1;
});

const callback = provider.callback();
server.on('request', async (req, res) => {
  if (req.method === 'GET' && req.url === '/__test/counts') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ refresh: refreshes }));
    return;
  }
  if (req.method === 'POST' && req.url === '/__test/person') {
    // {"sub": "bob", "groups": [...]} or {"sub": "bob", "disabled": true}
    let body = '';
    for await (const chunk of req) body += chunk;
    const { sub, ...change } = JSON.parse(body);
    Object.assign(people[sub], change);
    res.writeHead(204);
    res.end();
    return;
  }
  if (req.method === 'POST' && req.url === '/__test/sign') {
    let body = '';
    for await (const chunk of req) body += chunk;
    const claims = JSON.parse(body);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'at+jwt' })
      .sign(privateKey);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(token);
    return;
  }
  callback(req, res);
});

console.log(JSON.stringify({ issuer, kid: jwk.kid }));
