// The OpenID-Certified provider from the npm package `oidc-provider`, configured for Launcher's
// interoperability test (tests/test_interop_oidc_provider.py). Test use only: it signs in anyone.
//
//   node tests/interop/provider.mjs --port 4000 --issuer http://127.0.0.1:4000 \
//        --client '{"client_id": "...", "client_secret": "...", "redirect_uris": [...], ...}' \
//        [--accounts '{"alice": {"name": ..., "email": ..., "groups": [...], "department": ...}}']
//
// Each option may also come from the environment: OP_PORT, OP_ISSUER, OP_CLIENT, OP_ACCOUNTS.
// Prints "ready <issuer>" once listening, and one line per back-channel logout it sends
// ("backchannel.success <client_id> <sid>" / "backchannel.error <client_id> <message>").
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    issuer: { type: 'string' },
    client: { type: 'string' },
    accounts: { type: 'string' },
  },
});

const port = Number(args.port ?? process.env.OP_PORT);
const issuer = args.issuer ?? process.env.OP_ISSUER ?? `http://127.0.0.1:${port}`;
const client = JSON.parse(args.client ?? process.env.OP_CLIENT ?? 'null');
if (!Number.isInteger(port) || port <= 0 || !client?.client_id || !client?.client_secret) {
  console.error('usage: provider.mjs --port N [--issuer URL] --client JSON [--accounts JSON]');
  process.exit(2);
}

// A login name found here gets these claims; any other login name is a plain staff member.
const accounts = JSON.parse(args.accounts ?? process.env.OP_ACCOUNTS ?? 'null') ?? {
  alice: {
    name: 'Alice Jansen',
    email: 'alice+portal@zorggroep-noord.example',
    groups: ['staff', 'clinicians'],
    department: 'nursing',
  },
  bob: {
    name: 'Bob de Vries',
    email: 'bob@zorggroep-noord.example',
    groups: ['staff'],
    department: 'support-office',
  },
};

function claimsOf(login) {
  const known = accounts[login] ?? {
    name: login,
    email: `${login}@zorggroep-noord.example`,
    groups: ['staff'],
    department: 'support-office',
  };
  return { sub: login, preferred_username: login, email_verified: true, ...known };
}

// A fresh signing key per run, so that no development key ships with the tests.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-rs256', use: 'sig', alg: 'RS256' };

const isLoopback = (url) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);

const provider = new Provider(issuer, {
  clients: [{
    application_type: 'web', // http redirect URIs are allowed for web clients on the code flow
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    backchannel_logout_session_required: true, // sid in ID and logout tokens
    ...client,
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // Claims keyed by a scope name define that scope; `groups` releases groups and department.
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups', 'department'],
  },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return claimsOf(id); } };
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  pkce: { required: () => true },
  // oidc-provider refuses outgoing requests (here: back-channel logout) to special-use
  // addresses such as 127.0.0.1 to prevent SSRF. The portal under test is on loopback, so for
  // loopback URLs only, send the request without that guard.
  fetch(url, options) {
    if (isLoopback(url)) {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    }
    return globalThis.fetch(url, options);
  },
});

provider.on('backchannel.success', (ctx, c, accountId, sid) => {
  console.log(`backchannel.success ${c.clientId} ${sid}`);
});
provider.on('backchannel.error', (ctx, err, c) => {
  console.log(`backchannel.error ${c.clientId} ${err.message}`);
});
provider.on('server_error', (ctx, err) => {
  console.log(`server_error ${err.stack}`);
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
