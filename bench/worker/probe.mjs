// bench/worker/probe.mjs — the diagnostic targets of bench/worker.sh (`--diagnostics`): the
// trivial pass-through Worker (trivial.mjs) plus ONE piece of what a gateway Worker does, so
// each piece's cost in local workerd can be read against trivial.mjs.
//
//   PROBE=kv      (target k) before forwarding, the two Workers KV reads the Keygate Worker
//                 made on every request until 052ae31 (which caches them per isolate):
//                 `v1/meta/revision` and `v1/token/<sha256 hex of X-API-Key>` together, with
//                 cacheTtl 30 (as gateway/worker/src/kv.rs); 401 when the key has no record
//   PROBE=jsbody  (target j) what the Keygate Worker does around the backend call: a timeout
//                 timer raced against fetch(), and the response body pulled through a JS
//                 ReadableStream that counts its bytes (the shape of worker::Response::
//                 from_stream over gateway/worker's Counted stream) instead of workerd's
//                 native pass-through of a fetched body
//
// The upstream's base URL is the var UPSTREAM_URL.

const CACHE_TTL = 30;
const TIMEOUT_MS = 30000;

async function sha256Hex(text) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  let out = "";
  for (const b of d) out += b.toString(16).padStart(2, "0");
  return out;
}

function forward(request, env) {
  const url = new URL(request.url);
  return fetch(env.UPSTREAM_URL + url.pathname + url.search, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    redirect: "manual",
  });
}

async function kvThenForward(request, env) {
  const key = request.headers.get("x-api-key") ?? "";
  const [revision, token] = await Promise.all([
    env.KEYGATE_KV.get("v1/meta/revision", { type: "arrayBuffer", cacheTtl: CACHE_TTL }),
    key
      ? sha256Hex(key).then((h) => env.KEYGATE_KV.get(`v1/token/${h}`, { type: "arrayBuffer", cacheTtl: CACHE_TTL }))
      : null,
  ]);
  if (revision === null) return new Response("not ready\n", { status: 503 });
  if (token === null) return new Response("invalid key\n", { status: 401 });
  return forward(request, env);
}

async function forwardCounted(request, env) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error("timeout")), TIMEOUT_MS);
  });
  const backend = await Promise.race([forward(request, env), timeout]).finally(() => clearTimeout(timer));
  if (backend.body === null) return backend;
  const reader = backend.body.getReader();
  let bytes = 0;
  const counted = new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      bytes += value.byteLength;
      controller.enqueue(value.slice());
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(counted, backend);
}

export default {
  async fetch(request, env) {
    switch (env.PROBE) {
      case "kv":
        return kvThenForward(request, env);
      case "jsbody":
        return forwardCounted(request, env);
      default:
        return new Response(`PROBE must be kv or jsbody, not ${env.PROBE}\n`, { status: 500 });
    }
  },
};
