// The real Keygate stack for browser tests: control plane (SQLite, serving admin-web/dist),
// kv-sync into a local KV file, the native gateway, and an HTTP upstream that records what
// it was sent. Everything listens on 127.0.0.1; the control plane, kv-sync and the gateway's
// admin port on port 0 (their printed addresses are read back), the gateway's proxy port is
// chosen free just before it starts (the control plane must know the gateway's public URL).
// `stop()` ends exactly the processes started here, by PID.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const DIST = resolve(HERE, "../dist");
const STARTUP_MS = 60_000;

function binDir() {
  const dir = process.env.KEYGATE_BIN_DIR ?? resolve(HERE, "../../target/debug");
  for (const b of ["keygate-control-plane", "keygate-kv-sync", "keygate-gateway"]) {
    if (!existsSync(join(dir, b))) {
      throw new Error(`${join(dir, b)} missing: cargo build -p keygate-control-plane -p keygate-kv-sync -p keygate-gateway (or set KEYGATE_BIN_DIR)`);
    }
  }
  return dir;
}

/** A free TCP port on 127.0.0.1 (closed again before it is used). */
async function freePort() {
  const srv = createServer();
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok));
  const { port } = srv.address();
  await new Promise((ok) => srv.close(ok));
  return port;
}

/** An upstream that answers every request with what it received, and records it. */
async function startUpstream() {
  const seen = [];
  const srv = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ ok: true, path: req.url }));
  });
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    seen,
    close: () => new Promise((ok) => srv.close(ok)),
  };
}

/**
 * Starts `bin` with `env`, resolves with the first match of `pattern` in its stdout. The
 * process's output is kept for failure reports.
 */
function startProcess(name, bin, env, pattern) {
  const child = spawn(bin, [], {
    env: { ...process.env, KEYGATE_LOG: process.env.KEYGATE_LOG ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = [];
  const proc = { name, child, out, exited: null };
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${STARTUP_MS} ms:\n${out.join("")}`)), STARTUP_MS);
    let done = false;
    const onData = (chunk) => {
      const text = chunk.toString();
      out.push(text);
      if (out.length > 400) out.splice(0, out.length - 400);
      const m = !done && out.join("").match(pattern);
      if (m) {
        done = true;
        clearTimeout(timer);
        proc.match = m;
        ok(proc);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (c) => {
      out.push(c.toString());
      if (out.length > 400) out.splice(0, out.length - 400);
    });
    child.on("exit", (code, signal) => {
      proc.exited = { code, signal };
      if (!done) {
        clearTimeout(timer);
        fail(new Error(`${name} exited during startup (${code ?? signal}):\n${out.join("")}`));
      }
    });
  });
}

async function stopProcess(p) {
  if (p.exited) return;
  const exited = new Promise((ok) => p.child.once("exit", ok));
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.exited || p.child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Polls `fn` until it returns a truthy value or `ms` pass (then throws `what`). */
export async function eventually(what, fn, ms = 15_000, every = 250) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${last.message})` : ""}`);
    await new Promise((ok) => setTimeout(ok, every));
  }
}

/**
 * Starts the stack. Options: `usageFlushMs` (gateway hand-over period; default 1000 so
 * usage appears within seconds).
 */
export async function startStack({ usageFlushMs = 1000 } = {}) {
  if (!existsSync(join(DIST, "index.html"))) {
    throw new Error(`${DIST}/index.html missing: npm run build first`);
  }
  const bins = binDir();
  const data = mkdtempSync(join(tmpdir(), "keygate-e2e-"));
  const started = [];
  const upstream = await startUpstream();
  const stack = {
    data,
    upstream,
    procs: started,
    async stop() {
      for (const p of [...started].reverse()) await stopProcess(p);
      await upstream.close();
      if (!process.env.KEYGATE_E2E_KEEP) rmSync(data, { recursive: true, force: true });
    },
    /** The last lines each process printed (for failure messages). */
    logs() {
      return started.map((p) => `---- ${p.name}\n${p.out.join("").split("\n").slice(-40).join("\n")}`).join("\n");
    },
  };
  try {
    const gatewayPort = await freePort();
    stack.gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    const cp = await startProcess(
      "control-plane",
      join(bins, "keygate-control-plane"),
      {
        KEYGATE_DATA_DIR: data,
        KEYGATE_LISTEN: "127.0.0.1:0",
        KEYGATE_EMBEDDED_SERVICE_KEYS: "true",
        KEYGATE_ADMIN_WEB_DIR: DIST,
        KEYGATE_GATEWAY_PUBLIC_URL: stack.gatewayUrl,
      },
      /listening on (http:\/\/127\.0\.0\.1:\d+)/,
    );
    started.push(cp);
    stack.base = cp.match[1];
    stack.setupCode = readFileSync(join(data, "setup-code"), "utf8").trim();

    started.push(
      await startProcess(
        "kv-sync",
        join(bins, "keygate-kv-sync"),
        {
          KEYGATE_ADDR: stack.base,
          KEYGATE_SYNC_KEY_FILE: join(data, "kv-sync.key"),
          KEYGATE_KV: "sqlite",
          KEYGATE_KV_PATH: join(data, "kv.db"),
          KEYGATE_SYNC_METRICS_LISTEN: "127.0.0.1:0",
        },
        /metrics on http:\/\/127\.0\.0\.1:\d+/,
      ),
    );
    started.push(
      await startProcess(
        "gateway",
        join(bins, "keygate-gateway"),
        {
          KEYGATE_ADDR: stack.base,
          KEYGATE_GATEWAY_KEY_FILE: join(data, "gateway.key"),
          KEYGATE_EDGE_KEY_FILE: join(data, "edge.key"),
          KEYGATE_KV_PATH: join(data, "kv.db"),
          KEYGATE_GATEWAY_LISTEN: `127.0.0.1:${gatewayPort}`,
          KEYGATE_GATEWAY_ADMIN_LISTEN: "127.0.0.1:0",
          KEYGATE_PUBLIC_URL: stack.gatewayUrl,
          KEYGATE_USAGE_FLUSH_MS: String(usageFlushMs),
        },
        /keygate-gateway listening on http:\/\/127\.0\.0\.1:\d+/,
      ),
    );
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}
