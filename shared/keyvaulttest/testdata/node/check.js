// Drives the Key Vault test server (shared/keyvaulttest) with the Azure SDK
// for JavaScript: ClientSecretCredential (@azure/identity, MSAL for Node)
// and SecretClient (@azure/keyvault-secrets). Run by TestNodeSDK; it prints
// one JSON object on stdout, or an error on stderr and exits 1.
//
// Environment: KEYVAULT_URL, AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST, NODE_EXTRA_CA_CERTS (the test
// CA, read by Node at start-up), KVT_PREFIX (a prefix for the secret
// names) and KVT_DISABLE_CHALLENGE_VERIFICATION=1 for a vault addressed as
// 127.0.0.1, whose challenge resource (https://0.0.1:<port>) Node's URL
// parser reads as the address 0.0.0.1 (see Options.NamedVault).
"use strict";

const dns = require("node:dns");
const https = require("node:https");
const { ClientSecretCredential } = require("@azure/identity");
const { SecretClient } = require("@azure/keyvault-secrets");

// lookup resolves names under localhost to 127.0.0.1 (RFC 6761 section
// 6.3), as browsers do but getaddrinfo here does not, for the vault's host
// name vault.localhost; other names go to dns.lookup.
function lookup(hostname, options, callback) {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  if (h === "localhost" || h.endsWith(".localhost")) {
    if (options && options.all) {
      callback(null, [{ address: "127.0.0.1", family: 4 }]);
    } else {
      callback(null, "127.0.0.1", 4);
    }
    return;
  }
  dns.lookup(hostname, options, callback);
}

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set`);
  }
  return v;
}

async function all(iter) {
  const out = [];
  for await (const x of iter) {
    out.push(x);
  }
  return out;
}

// props keeps what the test checks of a SecretProperties.
function props(p) {
  return {
    id: p.id,
    name: p.name,
    version: p.version || "",
    enabled: p.enabled,
    contentType: p.contentType,
    tags: p.tags || {},
    createdOn: p.createdOn ? p.createdOn.toISOString() : null,
    updatedOn: p.updatedOn ? p.updatedOn.toISOString() : null,
    expiresOn: p.expiresOn ? p.expiresOn.toISOString() : null,
    recoveryLevel: p.recoveryLevel,
    recoverableDays: p.recoverableDays,
  };
}

async function main() {
  const credential = new ClientSecretCredential(
    env("AZURE_TENANT_ID"),
    env("AZURE_CLIENT_ID"),
    env("AZURE_CLIENT_SECRET"),
    {
      authorityHost: env("AZURE_AUTHORITY_HOST"),
      // As for any authority host that is not Entra's (see the package doc).
      disableInstanceDiscovery: true,
    },
  );
  const agent = new https.Agent({ keepAlive: true, lookup });
  const client = new SecretClient(env("KEYVAULT_URL"), credential, {
    retryOptions: { maxRetries: 0 },
    disableChallengeResourceVerification: process.env.KVT_DISABLE_CHALLENGE_VERIFICATION === "1",
    additionalPolicies: [
      {
        position: "perCall",
        policy: {
          name: "keyvaulttestLookup",
          sendRequest: (request, next) => {
            request.agent = agent;
            return next(request);
          },
        },
      },
    ],
  });
  const prefix = process.env.KVT_PREFIX || "node";
  const a = `${prefix}-a`;
  const b = `${prefix}-b`;
  const expiresOn = new Date(2_000_000_000 * 1000);

  const set1 = await client.setSecret(a, "v1", {
    contentType: "text/plain",
    tags: { kind: "service-key", state: "current" },
    expiresOn,
  });
  const set2 = await client.setSecret(a, "v2");
  const setB = await client.setSecret(b, "b1", { tags: { kind: "other" } });
  const latest = await client.getSecret(a);
  const first = await client.getSecret(a, { version: set1.properties.version });
  const versions = await all(client.listPropertiesOfSecretVersions(a));
  // Pages of one item, so that nextLink paging is exercised.
  const pages = [];
  for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 1 })) {
    pages.push(page.map(props));
  }
  const secrets = await all(client.listPropertiesOfSecrets());
  const updated = await client.updateSecretProperties(a, set1.properties.version, {
    enabled: false,
    tags: { state: "retired" },
  });
  let disabledGet = null;
  try {
    await client.getSecret(a, { version: set1.properties.version });
  } catch (e) {
    disabledGet = { statusCode: e.statusCode, code: e.code, message: e.message };
  }

  return {
    set: [set1, set2, setB].map((s) => ({ value: s.value, ...props(s.properties) })),
    latest: { value: latest.value, ...props(latest.properties) },
    first: { value: first.value, ...props(first.properties) },
    versions: versions.map(props),
    secretPages: pages,
    secrets: secrets.map(props),
    updated: props(updated),
    disabledGet,
  };
}

main().then(
  (out) => {
    process.stdout.write(JSON.stringify(out) + "\n");
    process.exit(0); // the keep-alive agent would hold the process open
  },
  (err) => {
    process.stderr.write(`check.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
