// bench/worker/trivial.mjs — the ceiling of bench/worker.sh: a pass-through Worker with no
// gateway work. It forwards the method, path + query, headers and body to the upstream whose
// base URL is the var UPSTREAM_URL, and returns the upstream's response as it streams in.
// What it costs per request is workerd's and fetch()'s own cost; the Keygate Worker is
// measured against it.
//
//   node gateway/worker/harness/serve.mjs --script bench/worker/trivial.mjs \
//        --var UPSTREAM_URL=http://127.0.0.1:PORT --no-ratelimits

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.UPSTREAM_URL + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: "manual",
    });
  },
};
